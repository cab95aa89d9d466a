using Pipelines.Tests;

namespace Pipelines.Bench.Benchmarks.Engine;

/// <summary>
/// The real worker program (<c>pipelines-worker.dll</c>, built beside the benchmark) as a process
/// of its own, configured through the environment as in a deployment; so its working set is the
/// worker's alone. Its output is kept to explain an early exit.
/// </summary>
internal sealed class WorkerProcess : IDisposable
{
    private const int ShownLines = 40;

    private readonly ChildProcess _process;

    private WorkerProcess(ChildProcess process) => _process = process;

    public static string Program => Path.Combine(AppContext.BaseDirectory, "pipelines-worker.dll");

    public static WorkerProcess Start(string workingDirectory, IReadOnlyDictionary<string, string> environment) =>
        new(ChildProcess.Start(Program, [], environment, workingDirectory));

    public bool HasExited => _process.HasExited;

    public long WorkingSet => _process.WorkingSet;

    /// <summary>The largest working set so far (<c>VmHWM</c>).</summary>
    public long PeakWorkingSet => _process.PeakWorkingSet;

    /// <summary>The last lines the worker printed.</summary>
    public string RecentOutput => string.Join(Environment.NewLine, _process.Output.TrimEnd().Split(Environment.NewLine).TakeLast(ShownLines));

    /// <summary>Stops the worker as an orchestrator would, with SIGTERM, and kills it if it has not exited within <paramref name="grace"/>.</summary>
    public Task StopAsync(TimeSpan grace) => _process.StopAsync(grace);

    public void Dispose() => _process.Dispose();
}
