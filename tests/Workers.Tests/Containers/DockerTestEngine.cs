using Docker.DotNet;
using Docker.DotNet.Models;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Pipelines.Tests;
using Pipelines.Workers.Containers;

namespace Pipelines.Workers.Tests.Containers;

/// <summary>
/// The Docker engine started by <c>eng/services.sh up</c> (DOCKER_HOST, else the local socket) and
/// its test image (PIPELINES_TEST_IMAGE). Locally a test is skipped when the engine does not
/// answer; with CI=true it runs and fails, because a silent skip would hide a broken CI machine.
/// </summary>
internal static class DockerTestEngine
{
    public static string TestImage => Environment.GetEnvironmentVariable("PIPELINES_TEST_IMAGE") is { Length: > 0 } image ? image : "pipelines-test/busybox:latest";

    private static int _workers;

    /// <summary>
    /// Starts the worker id of every container this test process creates, so the check after the
    /// suite (<see cref="LeftoverContainers"/>) finds them and never another process's containers.
    /// </summary>
    public static string WorkerPrefix { get; } = $"test-{Guid.NewGuid():N}"[..13] + "-";

    /// <summary>A worker id of its own for one test, so tests never see each other's containers.</summary>
    public static string NewWorkerId() => WorkerPrefix + Interlocked.Increment(ref _workers).ToString(System.Globalization.CultureInfo.InvariantCulture);

    private static readonly Lazy<string?> Missing = new(() =>
    {
        var endpoint = new ContainerOptions().ResolvedEndpoint;
        try
        {
            using var configuration = new DockerClientConfiguration(new Uri(endpoint));
            using var client = configuration.CreateClient();
            client.System.PingAsync().Wait(TimeSpan.FromSeconds(5));
            return null;
        }
        catch (Exception e) when (e is AggregateException or DockerApiException or HttpRequestException or IOException or TimeoutException)
        {
            return $"no Docker engine answers at {endpoint}; start it with: eval \"$(bash eng/services.sh up)\"";
        }
    });

    public static string? MissingReason => Missing.Value;

    /// <summary>A worker's engine connection under a worker id of its own.</summary>
    public static ContainerEngine Create(Action<ContainerOptions>? configure = null)
    {
        var options = new ContainerOptions { WorkerId = NewWorkerId(), MaxConcurrentContainers = 4 };
        configure?.Invoke(options);
        var failures = new ContainerOptionsValidator().Validate(null, options);
        Assert.True(failures.Succeeded, failures.FailureMessage);
        return new ContainerEngine(Options.Create(options));
    }

    /// <summary>A network pool on the test image, which has no pause program: its holders sleep with busybox.</summary>
    public static NetworkPoolOptions SleepingPool(int size) =>
        new() { Size = size, Image = TestImage, Command = ["sleep", "2147483647"] };

    public static ContainerStepExecutor Executor(ContainerEngine engine) => new(engine, TimeProvider.System);

    public static OrphanReaper Reaper(ContainerEngine engine) => new(engine, NullLogger<OrphanReaper>.Instance);

    public static async Task<IList<ContainerListResponse>> ContainersAsync(IDockerClient docker, string label, string value) =>
        await docker.Containers.ListContainersAsync(new ContainersListParameters
        {
            All = true,
            Filters = new Dictionary<string, IDictionary<string, bool>> { ["label"] = new Dictionary<string, bool> { [$"{label}={value}"] = true } },
        });
}

/// <summary>A fact that needs the Docker engine (see <see cref="DockerTestEngine"/>).</summary>
internal sealed class DockerFactAttribute : FactAttribute
{
    public DockerFactAttribute()
    {
        if (!TestServices.IsCi && DockerTestEngine.MissingReason is { } missing)
        {
            Skip = missing;
        }
    }
}
