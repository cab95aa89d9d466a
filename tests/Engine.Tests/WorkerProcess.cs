using Pipelines.Tests;

namespace Pipelines.Engine.Tests;

/// <summary>A worker as its own OS process (<c>pipelines-worker</c>), as it is deployed.</summary>
internal sealed class WorkerProcess : IDisposable
{
    private readonly ChildProcess _process;

    private WorkerProcess(ChildProcess process, string id)
    {
        _process = process;
        Id = id;
    }

    public string Id { get; }

    public bool HasExited => _process.HasExited;

    /// <summary>What the worker printed, for failure messages.</summary>
    public string Output => _process.Output;

    public static WorkerProcess Start(string id, IReadOnlyDictionary<string, string> environment)
    {
        var settings = new Dictionary<string, string>(environment)
        {
            ["Pipelines__Worker__Id"] = id,
            ["Logging__LogLevel__Default"] = "Warning",
        };
        return new WorkerProcess(ChildProcess.Start(Path.Combine(AppContext.BaseDirectory, "pipelines-worker.dll"), [], settings, AppContext.BaseDirectory), id);
    }

    /// <summary>SIGKILL: no chance to finish or hand anything back.</summary>
    public void Kill() => _process.Kill();

    /// <summary>SIGTERM, as Kubernetes sends before it kills a pod; returns the exit code.</summary>
    public Task<int> TerminateAsync(TimeSpan timeout) => _process.TerminateAsync(timeout);

    public void Dispose() => _process.Dispose();
}
