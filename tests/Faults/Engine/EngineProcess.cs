using Pipelines.Tests;

namespace Pipelines.Faults.Engine;

/// <summary>
/// A process of the deployment — a worker (<c>pipelines-worker</c>) or the HTTP API (<c>Pipelines.Api</c>),
/// the programs a deployment runs — its output kept in a file of the row's folder. Killed, stopped and
/// restarted by the faults.
/// </summary>
internal sealed class EngineProcess : IDisposable
{
    private readonly ChildProcess _process;

    private EngineProcess(ChildProcess process, string id)
    {
        _process = process;
        Id = id;
    }

    /// <summary>The worker id (<c>Pipelines:Worker:Id</c>; a restarted worker keeps it), or the process's name.</summary>
    public string Id { get; }

    public int ProcessId => _process.ProcessId;

    public bool HasExited => _process.HasExited;

    /// <summary>Starts a worker with the worker id <paramref name="id"/>.</summary>
    public static EngineProcess Start(string id, IReadOnlyDictionary<string, string> environment, string folder) =>
        Launch(Path.Combine(AppContext.BaseDirectory, "pipelines-worker.dll"), id, new Dictionary<string, string>(environment) { ["Pipelines__Worker__Id"] = id }, folder, []);

    /// <summary>Starts the HTTP API program (<c>Pipelines.Api</c>, from src/Api's output of the same configuration) listening on <paramref name="url"/>.</summary>
    public static EngineProcess StartApi(string name, IReadOnlyDictionary<string, string> environment, string folder, string url)
    {
        // .../tests/Faults/bin/CONFIGURATION/TFM/ → .../src/Api/bin/CONFIGURATION/TFM/Pipelines.Api.dll
        var output = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
        var api = Path.Combine(RepositoryRoot.File("src/Api/bin"), output.Parent!.Name, output.Name, "Pipelines.Api.dll");
        return Launch(api, name, environment, folder, ["--urls", url]);
    }

    private static EngineProcess Launch(string program, string id, IReadOnlyDictionary<string, string> environment, string folder, string[] arguments)
    {
        var settings = new Dictionary<string, string>(environment);
        settings.TryAdd("Logging__LogLevel__Default", "Warning");
        var process = ChildProcess.Start(program, arguments, settings, AppContext.BaseDirectory, logFile: pid => Path.Combine(folder, $"{id}-{pid}.log"));
        return new EngineProcess(process, id);
    }

    /// <summary>SIGKILL: no chance to finish, hand back or clean up anything.</summary>
    public void Kill() => _process.Kill();

    /// <summary>SIGTERM, as Kubernetes sends before it kills a pod; returns the exit code and how long the worker took to exit.</summary>
    public async Task<(int ExitCode, TimeSpan Took)> TerminateAsync(TimeSpan timeout)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var exitCode = await _process.TerminateAsync(timeout);
        return (exitCode, clock.Elapsed);
    }

    public string Output() => _process.Output;

    public void Dispose() => _process.Dispose();
}
