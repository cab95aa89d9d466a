using Docker.DotNet.Models;
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
                    ls /sys/class/net | tr '\n' ' ' > interfaces
                    wget -q -T 2 -O /dev/null http://1.1.1.1/ 2>/dev/null && echo reachable > network || echo unreachable > network
        """;

    private readonly RecordingLoggerProvider _logs = new();
    private readonly ILoggerFactory _loggers;

    public NetworkPoolTests() => _loggers = LoggerFactory.Create(logging => logging.AddProvider(_logs));

    public void Dispose() => _loggers.Dispose();

    /// <summary>A pool of this test's worker, in an engine connection of its own; <paramref name="sleeps"/> false gives its holders no command.</summary>
    private NetworkPool Pool(int size, bool sleeps = true) =>
        Pool(EngineWith(o => o.NetworkPool = sleeps ? DockerTestEngine.SleepingPool(size) : new NetworkPoolOptions { Size = size, Image = DockerTestEngine.TestImage }));

    private NetworkPool Pool(ContainerEngine engine) => new(engine, TimeProvider.System, _loggers.CreateLogger<NetworkPool>());

    /// <summary>Starts the pool and waits until all its namespaces are ready.</summary>
    private static async Task<NetworkPool> FilledAsync(NetworkPool pool)
    {
        await pool.StartAsync(CancellationToken.None);
        await Wait.UntilAsync(() => Task.FromResult(pool.Ready == pool.Size), $"were {pool.Size} namespaces ready");
        return pool;
    }

    private async Task<List<string>> HoldersAsync() =>
        (await DockerTestEngine.ContainersAsync(Docker, ContainerLabels.Role, "network"))
            .Where(c => c.Labels[ContainerLabels.Worker] == WorkerId)
            .Select(c => c.ID)
            .ToList();

    [DockerFact]
    public async Task a_step_joins_a_namespace_started_ahead_which_is_then_removed_and_replaced()
    {
        await using var pool = await FilledAsync(Pool(size: 1));
        using var executor = new ContainerStepExecutor(Engine, TimeProvider.System, pool);
        var first = Assert.Single(await HoldersAsync());
        var step = TestSteps.One(Probe);
        var log = new RecordingStepLog();

        var output = await executor.ExecuteAsync(TestSteps.Context(step, log));

        Assert.Contains(log.Lines, l => l.Stream == "system" && l.Text.Contains(", network none (a namespace started ahead), ", StringComparison.Ordinal));
        Assert.Equal("lo ", output!["interfaces"]!.GetValue<string>());
        Assert.Equal("unreachable", output["network"]!.GetValue<string>());
        // Removed, not handed to another step; a fresh one takes its place once no step runs.
        await Wait.UntilAsync(async () => pool.Ready == 1 && !(await HoldersAsync()).Contains(first), "was the used namespace replaced");
    }

    [DockerFact]
    public async Task a_step_with_sidecars_makes_its_own_namespace_and_leaves_the_pool_alone()
    {
        await using var pool = await FilledAsync(Pool(size: 1));
        using var executor = new ContainerStepExecutor(Engine, TimeProvider.System, pool);
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
        var pool = await FilledAsync(Pool(size: 3));
        using var executor = new ContainerStepExecutor(Engine, TimeProvider.System, pool);
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
        var pool = await FilledAsync(Pool(size: 2));
        pool.Dispose(); // the process dies: nothing removes its holders

        var removed = await DockerTestEngine.Reaper(Engine).RemoveOrphansAsync();

        Assert.Equal(2, removed);
        Assert.Empty(await HoldersAsync());
    }

    [DockerFact]
    public async Task a_step_taken_over_from_a_dead_process_removes_that_processs_holders_and_spares_its_own()
    {
        var dead = await FilledAsync(Pool(size: 2));
        dead.Dispose(); // the process dies: nothing removes its holders
        var deadHolders = await Docker.Containers.ListContainersAsync(new ContainersListParameters
        {
            All = true,
            Filters = new Dictionary<string, IDictionary<string, bool>> { ["id"] = (await HoldersAsync()).ToDictionary(id => id, _ => true) },
        });
        var step = TestSteps.One(Probe);
        var context = TestSteps.Context(step, attempt: 2);
        // The dead process's attempt 1 of the step, still running.
        var left = await Docker.Containers.CreateContainerAsync(new CreateContainerParameters
        {
            Image = DockerTestEngine.TestImage,
            Cmd = ["sleep", "600"],
            HostConfig = new HostConfig { NetworkMode = "none" },
            Labels = new Dictionary<string, string>
            {
                [ContainerLabels.Managed] = "true",
                [ContainerLabels.Run] = context.RunId.ToString(),
                [ContainerLabels.Step] = step.Name,
                [ContainerLabels.Attempt] = "1",
                [ContainerLabels.Worker] = WorkerId,
                [ContainerLabels.WorkerInstance] = deadHolders[0].Labels[ContainerLabels.WorkerInstance],
            },
        });
        await Docker.Containers.StartContainerAsync(left.ID, new ContainerStartParameters());
        var engine = EngineWith(o => o.NetworkPool = DockerTestEngine.SleepingPool(2));
        await using var live = await FilledAsync(Pool(engine));
        using var executor = new ContainerStepExecutor(engine, TimeProvider.System, live);
        var liveHolders = (await HoldersAsync()).Except(deadHolders.Select(h => h.ID)).ToList();

        await executor.ExecuteAsync(context);

        Assert.DoesNotContain(await HoldersAsync(), deadHolders.Select(h => h.ID).Contains);
        Assert.Empty(await ContainersOfRunAsync(context.RunId));
        // The step used one of the live pool's two namespaces, removed in the background; the other stays.
        await Wait.UntilAsync(async () => (await HoldersAsync()).Intersect(liveHolders).Count() <= 1, "was the used namespace removed");
        Assert.Single((await HoldersAsync()).Intersect(liveHolders));
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
