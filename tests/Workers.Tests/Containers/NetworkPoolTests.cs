using Microsoft.Extensions.Logging;
using Pipelines.Workers.Containers;

namespace Pipelines.Workers.Tests.Containers;

public sealed class NetworkPoolTests : ContainerTests, IDisposable
{
    private const string Probe = """
        pipelines:
          p:
            steps:
              - name: probe
                image: ${IMAGE}
                command:
                  - sh
                  - -c
                  - |
                    cd /pipelines/output
                    readlink /proc/self/ns/net > namespace
                    ls /sys/class/net | tr '\n' ' ' > interfaces
                    wget -q -T 2 -O /dev/null http://1.1.1.1/ 2>/dev/null && echo reachable > network || echo unreachable > network
        """;

    private readonly RecordingLoggerProvider _logs = new();
    private readonly ILoggerFactory _loggers;

    public NetworkPoolTests() => _loggers = LoggerFactory.Create(logging => logging.AddProvider(_logs));

    public void Dispose() => _loggers.Dispose();

    /// <summary>A pool of this test's worker, in an engine connection of its own; <paramref name="sleeps"/> false gives its holders no command.</summary>
    private NetworkPool Pool(int size, bool sleeps = true) =>
        new(EngineWith(o => o.NetworkPool = sleeps ? DockerTestEngine.SleepingPool(size) : new NetworkPoolOptions { Size = size, Image = DockerTestEngine.TestImage }),
            TimeProvider.System, _loggers.CreateLogger<NetworkPool>());

    private async Task<List<string>> HoldersAsync() =>
        (await DockerTestEngine.ContainersAsync(Docker, ContainerLabels.Role, "network"))
            .Where(c => c.Labels[ContainerLabels.Worker] == WorkerId)
            .Select(c => c.ID)
            .ToList();

    [DockerFact]
    public async Task a_step_joins_a_namespace_started_ahead_that_no_other_step_uses_and_a_fresh_one_replaces_it()
    {
        await using var pool = Pool(size: 1);
        await pool.StartAsync(CancellationToken.None);
        using var executor = new ContainerStepExecutor(Engine, TimeProvider.System, pool);
        await Wait.UntilAsync(() => Task.FromResult(pool.Ready == 1), "was one namespace ready");
        var first = Assert.Single(await HoldersAsync());
        var step = TestSteps.One(Probe);
        var log = new RecordingStepLog();

        var output = await executor.ExecuteAsync(TestSteps.Context(step, log));

        Assert.Contains(log.Lines, l => l.Stream == "system" && l.Text.Contains(", network none (a namespace started ahead), ", StringComparison.Ordinal));
        Assert.Equal("lo ", output!["interfaces"]!.GetValue<string>());
        Assert.Equal("unreachable", output["network"]!.GetValue<string>());
        await Wait.UntilAsync(async () => pool.Ready == 1 && !(await HoldersAsync()).Contains(first), "was the used namespace replaced");
        var second = await executor.ExecuteAsync(TestSteps.Context(step));
        Assert.NotEqual(output["namespace"]!.GetValue<string>(), second!["namespace"]!.GetValue<string>());
    }

    [DockerFact]
    public async Task a_step_with_sidecars_makes_its_own_namespace_and_leaves_the_pool_alone()
    {
        await using var pool = Pool(size: 1);
        await pool.StartAsync(CancellationToken.None);
        using var executor = new ContainerStepExecutor(Engine, TimeProvider.System, pool);
        await Wait.UntilAsync(() => Task.FromResult(pool.Ready == 1), "was one namespace ready");
        var holder = Assert.Single(await HoldersAsync());
        var step = TestSteps.One("""
            pipelines:
              p:
                steps:
                  - name: with-sidecar
                    image: ${IMAGE}
                    command: "true"
                    sidecars:
                      - { name: idle, image: "${IMAGE}", command: ["sleep", "600"] }
            """);
        var log = new RecordingStepLog();

        await executor.ExecuteAsync(TestSteps.Context(step, log));

        Assert.Contains(log.Lines, l => l.Stream == "system" && l.Text.Contains(", network shared with its sidecars, ", StringComparison.Ordinal));
        Assert.Equal([holder], await HoldersAsync());
    }

    [DockerFact]
    public async Task stopping_the_pool_removes_its_holders_and_the_steps_that_ran_leave_nothing()
    {
        var pool = Pool(size: 3);
        await pool.StartAsync(CancellationToken.None);
        using var executor = new ContainerStepExecutor(Engine, TimeProvider.System, pool);
        await Wait.UntilAsync(() => Task.FromResult(pool.Ready == 3), "were three namespaces ready");
        var context = TestSteps.Context(TestSteps.One(Probe));
        await executor.ExecuteAsync(context);

        await pool.DisposeAsync();

        Assert.Empty(await HoldersAsync());
        Assert.Empty(await ContainersOfRunAsync(context.RunId));
        Assert.Equal(0, pool.Ready);
    }

    [DockerFact]
    public async Task the_reaper_removes_the_holders_a_crashed_process_of_the_worker_left()
    {
        var pool = Pool(size: 2);
        await pool.StartAsync(CancellationToken.None);
        await Wait.UntilAsync(() => Task.FromResult(pool.Ready == 2), "were two namespaces ready");
        pool.Dispose(); // the process dies: nothing removes its holders

        var removed = await DockerTestEngine.Reaper(Engine).RemoveOrphansAsync();

        Assert.Equal(2, removed);
        Assert.Empty(await HoldersAsync());
    }

    [DockerFact]
    public async Task an_image_that_does_not_sleep_turns_the_pool_off_and_steps_make_their_own_namespace()
    {
        await using var pool = Pool(size: 2, sleeps: false);
        await pool.StartAsync(CancellationToken.None);
        using var executor = new ContainerStepExecutor(Engine, TimeProvider.System, pool);
        await Wait.UntilAsync(() => Task.FromResult(_logs.Lines.Any(l => l.StartsWith("Warning", StringComparison.Ordinal))), "was a warning logged");
        var log = new RecordingStepLog();

        var output = await executor.ExecuteAsync(TestSteps.Context(TestSteps.One(Probe), log));

        var warning = Assert.Single(_logs.Lines);
        Assert.StartsWith($"Warning {typeof(NetworkPool).FullName}: The network pool is off: no holder of image {DockerTestEngine.TestImage} could be started;", warning, StringComparison.Ordinal);
        Assert.Contains("a holder exited with code 0 instead of sleeping; set Pipelines:Containers:NetworkPool:Command", warning, StringComparison.Ordinal);
        Assert.Contains(log.Lines, l => l.Stream == "system" && l.Text.Contains(", network none, ", StringComparison.Ordinal));
        Assert.Equal("lo ", output!["interfaces"]!.GetValue<string>());
        Assert.Empty(await HoldersAsync());
    }
}
