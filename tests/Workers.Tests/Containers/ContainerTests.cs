using Docker.DotNet;
using Docker.DotNet.Models;
using Pipelines.Workers.Containers;

namespace Pipelines.Workers.Tests.Containers;

/// <summary>
/// A test against the real Docker engine, as one worker. After each test no container of that
/// worker may be left: the test fails if one is (and removes it).
/// </summary>
public abstract class ContainerTests : IAsyncLifetime
{
    private readonly List<ContainerEngine> _engines = [];

    protected ContainerTests()
    {
        WorkerId = DockerTestEngine.NewWorkerId();
        Engine = NewEngine();
        Executor = DockerTestEngine.Executor(Engine);
    }

    protected string WorkerId { get; }

    protected ContainerEngine Engine { get; }

    protected ContainerStepExecutor Executor { get; }

    protected IDockerClient Docker => Engine.Client;

    /// <summary>Another executor of this same worker, with different settings.</summary>
    protected ContainerStepExecutor ExecutorWith(Action<ContainerOptions> configure) => DockerTestEngine.Executor(EngineWith(configure));

    /// <summary>Another engine connection of this same worker (a process of its own, as far as labels tell), with different settings.</summary>
    protected ContainerEngine EngineWith(Action<ContainerOptions> configure) => NewEngine(configure);

    /// <summary>The step's containers still on the engine (any worker).</summary>
    protected async Task<IList<ContainerListResponse>> ContainersOfRunAsync(Guid runId) =>
        await DockerTestEngine.ContainersAsync(Docker, ContainerLabels.Run, runId.ToString());

    private ContainerEngine NewEngine(Action<ContainerOptions>? configure = null)
    {
        var engine = DockerTestEngine.Create(options =>
        {
            options.WorkerId = WorkerId;
            configure?.Invoke(options);
        });
        _engines.Add(engine);
        return engine;
    }

    public virtual Task InitializeAsync() => Task.CompletedTask;

    public virtual async Task DisposeAsync()
    {
        var left = await DockerTestEngine.ContainersAsync(Docker, ContainerLabels.Worker, WorkerId);
        foreach (var container in left)
        {
            await Docker.Containers.RemoveContainerAsync(container.ID, new ContainerRemoveParameters { Force = true, RemoveVolumes = true });
        }
        foreach (var engine in _engines)
        {
            engine.Dispose();
        }
        Assert.True(left.Count == 0, $"containers left behind: {string.Join(", ", left.Select(c => c.Names.FirstOrDefault()))}");
    }
}
