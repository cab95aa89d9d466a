using System.Reflection;
using Docker.DotNet;
using Docker.DotNet.Models;
using Pipelines.Workers.Containers;
using Xunit.Abstractions;
using Xunit.Sdk;

[assembly: TestFramework("Pipelines.Workers.Tests.Containers.LeftoverContainers", "Pipelines.Workers.Tests")]

namespace Pipelines.Workers.Tests.Containers;

/// <summary>
/// xunit's own test framework plus one check once every test of the assembly has run: no container
/// with the project's labels (<c>pipelines.managed=true</c>) is left by a worker of this test
/// process. A leftover is removed and fails the run as an assembly cleanup failure. Containers of
/// other processes sharing the engine (another suite, a developer's worker) are not looked at.
/// </summary>
public sealed class LeftoverContainers(IMessageSink diagnosticMessageSink) : XunitTestFramework(diagnosticMessageSink)
{
    protected override ITestFrameworkExecutor CreateExecutor(AssemblyName assemblyName) =>
        new Executor(assemblyName, SourceInformationProvider, DiagnosticMessageSink);

    /// <summary>Removes the containers this process's workers left, and fails when there were any.</summary>
    public static async Task AssertNoneLeftAsync()
    {
        if (DockerTestEngine.MissingReason is not null)
        {
            return; // The Docker tests were skipped (or failed already, with CI=true).
        }
        using var engine = DockerTestEngine.Create();
        var left = (await engine.Client.Containers.ListContainersAsync(new ContainersListParameters
        {
            All = true,
            Filters = new Dictionary<string, IDictionary<string, bool>>
            {
                ["label"] = new Dictionary<string, bool> { [$"{ContainerLabels.Managed}=true"] = true },
            },
        })).Where(c => c.Labels.TryGetValue(ContainerLabels.Worker, out var worker) && worker.StartsWith(DockerTestEngine.WorkerPrefix, StringComparison.Ordinal)).ToList();
        foreach (var container in left)
        {
            try
            {
                await engine.Client.Containers.RemoveContainerAsync(container.ID, new ContainerRemoveParameters { Force = true, RemoveVolumes = true });
            }
            catch (DockerContainerNotFoundException)
            {
            }
        }
        if (left.Count > 0)
        {
            throw new ContainersLeftBehindException("after the suite, containers with the project's labels were left (now removed): " +
                string.Join(", ", left.Select(c => $"{c.Names.FirstOrDefault()?.TrimStart('/')} ({c.State}, worker {c.Labels[ContainerLabels.Worker]})")));
        }
    }

    /// <summary>Named for what went wrong: a runner shows only the type of an assembly cleanup failure at its default verbosity.</summary>
    private sealed class ContainersLeftBehindException(string message) : Exception(message);

    private sealed class Executor(AssemblyName assemblyName, ISourceInformationProvider sourceInformationProvider, IMessageSink diagnosticMessageSink)
        : XunitTestFrameworkExecutor(assemblyName, sourceInformationProvider, diagnosticMessageSink)
    {
        protected override async void RunTestCases(IEnumerable<IXunitTestCase> testCases, IMessageSink executionMessageSink, ITestFrameworkExecutionOptions executionOptions)
        {
            using var runner = new Runner(TestAssembly, testCases, DiagnosticMessageSink, executionMessageSink, executionOptions);
            await runner.RunAsync();
        }
    }

    private sealed class Runner(ITestAssembly testAssembly, IEnumerable<IXunitTestCase> testCases, IMessageSink diagnosticMessageSink,
        IMessageSink executionMessageSink, ITestFrameworkExecutionOptions executionOptions)
        : XunitTestAssemblyRunner(testAssembly, testCases, diagnosticMessageSink, executionMessageSink, executionOptions)
    {
        protected override async Task BeforeTestAssemblyFinishedAsync()
        {
            await Aggregator.RunAsync(AssertNoneLeftAsync);
            await base.BeforeTestAssemblyFinishedAsync();
        }
    }
}
