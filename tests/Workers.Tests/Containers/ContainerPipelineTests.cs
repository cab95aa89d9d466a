using System.Text.Json.Nodes;
using Docker.DotNet.Models;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Pipelines.Core.Definitions;
using Pipelines.Core.Execution;
using Pipelines.Core.Hosting;
using Pipelines.Core.Planning;
using Pipelines.Core.Runs;
using Pipelines.Engine.Tests;
using Pipelines.Tests;
using Pipelines.Workers.Containers;
using Pipelines.Workers.Demo;
using Pipelines.Workers.Hosting;

namespace Pipelines.Workers.Tests.Containers;

/// <summary>
/// Container steps through the whole engine: coordinator and worker in one process (in-memory
/// transport, SQLite run store), the worker running the steps on the real Docker engine under this
/// test's worker id, so that no container of it may be left afterwards: not a step's, a sidecar's or
/// one of its network pool.
/// </summary>
public sealed class ContainerPipelineTests : ContainerTests, IDisposable
{
    // Generous: the Docker tests of the other classes run at the same time.
    private static readonly TimeSpan RunTimeout = TimeSpan.FromMinutes(2);

    private const string Sleeper = """
        pipelines:
          long:
            steps:
              - name: sleeper
                image: ${IMAGE}
                command: ["sh", "-c", "echo ready; exec sleep 600"]
                timeout: 10m
              - { name: summarise, handler: demo.summarise, depends_on: [sleeper] }
        """;

    private readonly TemporarySqlite _database = new();

    public void Dispose() => _database.Dispose();

    private static PipelineCatalog Catalog(string yaml) =>
        EngineHost.Catalog(yaml, new Dictionary<string, string> { ["IMAGE"] = DockerTestEngine.TestImage });

    private Task<EngineHost> StartAsync(PipelineCatalog catalog, Action<ContainerOptions>? containers = null, Action<PipelinesBuilder>? more = null,
        TimeSpan? gracePeriod = null) =>
        EngineHost.StartAsync(catalog, _database.Options, pipelines =>
        {
            pipelines.AddCoordinator().AddWorker().AddDemoHandlers().AddContainers(o =>
            {
                // The pool's default image would be pulled from the internet; steps join its namespaces here too.
                o.NetworkPool = DockerTestEngine.SleepingPool(2);
                containers?.Invoke(o);
            });
            more?.Invoke(pipelines);
        }, worker: worker =>
        {
            worker.Id = WorkerId;
            worker.GracePeriod = gracePeriod ?? worker.GracePeriod;
        });

    [DockerFact]
    public async Task the_word_count_example_passes_its_container_output_file_to_the_handler_step_after_it()
    {
        var catalog = PipelineCatalog.Load(RepositoryRoot.File("config/pipelines.yaml"), new PipelineLoaderOptions
        {
            Variables = new Dictionary<string, string> { ["PIPELINES_EXAMPLE_IMAGE"] = DockerTestEngine.TestImage },
        });
        await using var engine = await StartAsync(catalog);

        var run = await engine.WaitForRunAsync((await engine.StartRunAsync("word-count")).RunId, RunTimeout);

        Assert.Equal(RunState.Succeeded, run.State);
        Assert.Equal("""{"count":"4"}""", Step(run, "count").Output);
        Assert.Equal("""{"words":4}""", Step(run, "summarise").Output);
        var details = JsonNode.Parse((await engine.AttemptsAsync(run.Id)).Single(a => a.Step == "count").Details!)!;
        Assert.Equal(DockerTestEngine.TestImage, details["image"]!.GetValue<string>());
        Assert.StartsWith("sha256:", details["image_digest"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Equal(("runc", "0"), (details["runtime"]!.GetValue<string>(), details["exit_code"]!.GetValue<string>()));
        Assert.Contains(await LogAsync(engine, run.Id, "count"), l => l is { Stream: "stdout", Text: "counted" });
        Assert.Empty(await ContainersOfRunAsync(run.Id));
    }

    [DockerFact]
    public async Task copilis_seed_scenario_runs_end_to_end_from_its_copili_file_and_its_service_container_runs_alone()
    {
        var file = Path.Combine(AppContext.BaseDirectory, "Containers", "Scenarios", "copili", "seed.yml");
        var catalog = PipelineCatalog.Load(file, new PipelineLoaderOptions
        {
            Variables = new Dictionary<string, string> { ["IMAGE"] = DockerTestEngine.TestImage },
        });
        var dataset = Path.Combine(Path.GetDirectoryName(file)!, "dataset");
        await using var engine = await StartAsync(catalog, o => o.AllowedHostPaths = [dataset + ":ro"]);

        var run = await engine.WaitForRunAsync((await engine.StartRunAsync("seed")).RunId, RunTimeout);

        Assert.True(run.State == RunState.Succeeded, await DescribeAsync(engine, run));
        Assert.Equal(["FRAGMENTS", "GENES", "INDEX", "PAPERS"], run.Steps.Select(s => s.Name).Order(StringComparer.Ordinal));
        Assert.All(run.Steps, s => Assert.Equal((StepState.Succeeded, 1), (s.State, s.Attempts)));
        StartedAfter(run, "FRAGMENTS", "PAPERS");
        StartedAfter(run, "GENES", "PAPERS", "FRAGMENTS");
        StartedAfter(run, "INDEX", "GENES");
        Assert.Equal("""{"papers":"3"}""", Step(run, "PAPERS").Output);
        Assert.Contains(await LogAsync(engine, run.Id, "PAPERS"), l => l is { Stream: "stdout", Text: "loaded 3 papers in batches of 2" });
        var fragments = JsonNode.Parse(Step(run, "FRAGMENTS").Output!)!;
        Assert.Equal("warm", fragments["cache"]!.GetValue<string>());
        Assert.Equal("""{"PAPERS":{"papers":"3"}}""", fragments["upstream"]!.GetValue<string>());
        var genes = JsonNode.Parse(JsonNode.Parse(Step(run, "GENES").Output!)!["upstream"]!.GetValue<string>())!;
        Assert.Equal("3", genes["PAPERS"]!["papers"]!.GetValue<string>());
        Assert.Equal("warm", genes["FRAGMENTS"]!["cache"]!.GetValue<string>());
        var index = JsonNode.Parse(Step(run, "INDEX").Output!)!;
        Assert.Equal("indexed", index["status"]!.GetValue<string>());
        Assert.Contains("\"GENES\":", index["upstream"]!.GetValue<string>(), StringComparison.Ordinal);

        // copili's service mode: the service container on its own, as its daily schedule runs it.
        var services = catalog.Get("seed-services").Definition;
        Assert.Equal(["INDEX"], services.Steps.Select(s => s.Name));
        Assert.Equal(("service-mode", "0 0 * * *"), (services.Schedules.Single().Name, services.Schedules.Single().Cron));
        var serviceRun = await engine.WaitForRunAsync((await engine.StartRunAsync("seed-services")).RunId, RunTimeout);

        Assert.True(serviceRun.State == RunState.Succeeded, await DescribeAsync(engine, serviceRun));
        Assert.Equal("""{"status":"indexed","upstream":"{}"}""", Step(serviceRun, "INDEX").Output);
        Assert.Empty(await ContainersOfRunAsync(run.Id));
        Assert.Empty(await ContainersOfRunAsync(serviceRun.Id));
    }

    [DockerFact]
    public async Task cancelling_a_run_kills_its_running_container_before_the_step_counts_as_cancelled()
    {
        await using var engine = await StartAsync(Catalog(Sleeper));
        var launched = await engine.StartRunAsync("long");
        await WaitForContainersAsync(launched.RunId, "running", containers => containers.Any(c => c.State == "running"));

        await engine.Launcher.CancelAsync(launched.RunId, CancellationToken.None);

        var run = await engine.WaitForRunAsync(launched.RunId, RunTimeout);
        Assert.Equal(RunState.Cancelled, run.State);
        Assert.Equal(StepState.Cancelled, Step(run, "summarise").State);
        await engine.WaitForStepAsync(launched.RunId, "sleeper", StepState.Cancelled, RunTimeout);
        // The worker records the step as cancelled only once its containers are removed.
        Assert.Empty(await ContainersOfRunAsync(launched.RunId));
    }

    [DockerFact]
    public async Task a_step_past_its_timeout_fails_its_run_and_leaves_no_container()
    {
        await using var engine = await StartAsync(Catalog(Sleeper.Replace("timeout: 10m", "timeout: 2s", StringComparison.Ordinal)));

        var run = await engine.WaitForRunAsync((await engine.StartRunAsync("long")).RunId, RunTimeout);

        Assert.Equal(RunState.Failed, run.State);
        var sleeper = Step(run, "sleeper");
        Assert.Equal((StepState.Failed, 1, "timeout"), (sleeper.State, sleeper.Attempts, sleeper.ErrorKind));
        Assert.StartsWith("step 'sleeper' timed out after 2s", sleeper.ErrorMessage, StringComparison.Ordinal);
        Assert.Contains(await LogAsync(engine, run.Id, "sleeper"), l => l is { Stream: "stdout", Text: "ready" });
        Assert.Equal(StepState.Cancelled, Step(run, "summarise").State);
        Assert.Empty(await ContainersOfRunAsync(run.Id));
    }

    [DockerFact]
    public async Task a_worker_stopping_mid_step_hands_it_back_and_leaves_no_container_not_even_its_network_namespace()
    {
        var engine = await StartAsync(Catalog(Sleeper), gracePeriod: TimeSpan.FromSeconds(1));
        var pool = engine.Services.GetRequiredService<NetworkPool>();
        await Wait.UntilAsync(() => Task.FromResult(pool.Ready == 2), "was the network pool ready");
        var launched = await engine.StartRunAsync("long");
        await WaitForContainersAsync(launched.RunId, "running", containers => containers.Any(c => c.State == "running"));
        // The pool refills only while no step runs: one namespace is the running step's.
        Assert.Equal(1, pool.Ready);

        await engine.DisposeAsync();

        Assert.Empty(await ContainersOfRunAsync(launched.RunId));
        Assert.Empty((await DockerTestEngine.ContainersAsync(Docker, ContainerLabels.Worker, WorkerId)).Select(c => c.Names.Single()));
    }

    [DockerFact]
    public async Task a_registry_password_is_in_no_stored_error_no_step_log_line_and_no_worker_log()
    {
        const string password = "registry-pa55word-end-to-end";
        var catalog = Catalog("""
            private:
              - name: LOADER
                image_repo: 127.0.0.1:9/team/loader
                tag: "1.0"
                image_reg_username: robot
                image_reg_password: $REGISTRY_PASSWORD
            """);
        var workerLog = new RecordingLoggerProvider();
        await using var engine = await StartAsync(catalog, more: pipelines =>
        {
            pipelines.Services.Replace(ServiceDescriptor.Singleton<ISecretResolver>(
                new DictionarySecrets(new Dictionary<string, string> { ["REGISTRY_PASSWORD"] = password })));
            pipelines.Services.AddSingleton<ILoggerProvider>(workerLog);
            // Everything reaches this provider, not only the warnings the host's console shows.
            pipelines.Services.Configure<LoggerFilterOptions>(o => o.Rules.Add(new LoggerFilterRule(typeof(RecordingLoggerProvider).FullName, null, LogLevel.Trace, null)));
        });

        var run = await engine.WaitForRunAsync((await engine.StartRunAsync("private")).RunId, RunTimeout);

        Assert.Equal(RunState.Failed, run.State);
        var step = Step(run, "LOADER");
        Assert.Equal("image", step.ErrorKind);
        Assert.Contains("image '127.0.0.1:9/team/loader:1.0' could not be pulled", step.ErrorMessage, StringComparison.Ordinal);
        var attempts = await engine.AttemptsAsync(run.Id);
        var log = await LogAsync(engine, run.Id, "LOADER");
        Assert.Contains(log, l => l is { Stream: "system", Text: "pulling image 127.0.0.1:9/team/loader:1.0 as robot" });
        Assert.Contains(workerLog.Lines, l => l.Contains("could not be pulled", StringComparison.Ordinal));
        string?[] stored =
        [
            run.Error, step.ErrorType, step.ErrorMessage, step.ErrorStack,
            .. attempts.SelectMany(a => new[] { a.ErrorType, a.ErrorMessage, a.Details }),
            .. log.Select(l => l.Text),
            .. workerLog.Lines,
        ];
        Assert.All(stored, text => Assert.DoesNotContain(password, text ?? "", StringComparison.Ordinal));
    }

    private static StepRecord Step(RunRecord run, string name) => run.Steps.Single(s => s.Name == name);

    private static void StartedAfter(RunRecord run, string step, params string[] dependencies)
    {
        foreach (var dependency in dependencies)
        {
            Assert.True(Step(run, step).StartedAt >= Step(run, dependency).FinishedAt,
                $"{step} started at {Step(run, step).StartedAt:O}, before {dependency} finished at {Step(run, dependency).FinishedAt:O}");
        }
    }

    private static Task<List<StepLogRecord>> LogAsync(EngineHost engine, Guid runId, string step) =>
        engine.Store.ReadAsync(c => c.Logs.Where(l => l.RunId == runId && l.Step == step).OrderBy(l => l.Id).ToListAsync());

    /// <summary>The run's steps with their errors and logs, for a failed assertion.</summary>
    private static async Task<string> DescribeAsync(EngineHost engine, RunRecord run)
    {
        var lines = new List<string> { $"run {run.Id} {run.State}: {run.Error}" };
        foreach (var step in run.Steps)
        {
            lines.Add($"{step.Name}: {step.State} {step.ErrorMessage}");
            lines.AddRange((await LogAsync(engine, run.Id, step.Name)).Select(l => $"  {l.Stream}: {l.Text}"));
        }
        return string.Join('\n', lines);
    }

    private Task WaitForContainersAsync(Guid runId, string what, Func<IList<ContainerListResponse>, bool> condition) =>
        Wait.UntilAsync(async () => condition(await ContainersOfRunAsync(runId)), $"were the containers of run {runId} {what}");
}
