using System.Diagnostics;
using Pipelines.Faults.Services;
using Pipelines.Tests;

namespace Pipelines.Faults.Engine;

/// <summary>
/// A process of the deployment — a worker (<c>pipelines-worker</c>) or the HTTP API (<c>Pipelines.Api</c>),
/// the programs a deployment runs — its output kept in a file of the row's folder. Killed, stopped and
/// restarted by the faults.
/// </summary>
internal sealed class EngineProcess : IDisposable
{
    private static readonly Lock OutputGate = new();
    private readonly Process _process;
    private readonly StreamWriter _output;
    private bool _disposed;

    private EngineProcess(Process process, string id, string outputFile, StreamWriter output)
    {
        _process = process;
        Id = id;
        OutputFile = outputFile;
        _output = output;
    }

    /// <summary>The worker id (<c>Pipelines:Worker:Id</c>; a restarted worker keeps it), or the process's name.</summary>
    public string Id { get; }

    public int ProcessId => _process.Id;

    public bool HasExited => _process.HasExited;

    public string OutputFile { get; }

    /// <summary>Starts a worker with the worker id <paramref name="id"/>.</summary>
    public static EngineProcess Start(string id, IReadOnlyDictionary<string, string> environment, string folder) =>
        Launch("pipelines-worker.dll", id, new Dictionary<string, string>(environment) { ["Pipelines__Worker__Id"] = id }, folder, []);

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
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = AppContext.BaseDirectory,
        };
        start.ArgumentList.Add(Path.IsPathRooted(program) ? program : Path.Combine(AppContext.BaseDirectory, program));
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }
        foreach (var (key, value) in environment)
        {
            start.Environment[key] = value;
        }
        start.Environment.TryAdd("Logging__LogLevel__Default", "Warning");
        var process = Process.Start(start) ?? throw new InvalidOperationException($"could not start {program}");
        var outputFile = Path.Combine(folder, $"{id}-{process.Id}.log");
        var output = new StreamWriter(outputFile, append: true) { AutoFlush = true };
        var worker = new EngineProcess(process, id, outputFile, output);
        process.OutputDataReceived += (_, e) => worker.Append(e.Data);
        process.ErrorDataReceived += (_, e) => worker.Append(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return worker;
    }

    /// <summary>SIGKILL: no chance to finish, hand back or clean up anything.</summary>
    public void Kill()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
        }
        _process.WaitForExit();
    }

    /// <summary>SIGTERM, as Kubernetes sends before it kills a pod; returns the exit code and how long the worker took to exit.</summary>
    public async Task<(int ExitCode, TimeSpan Took)> TerminateAsync(TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        await Shell.SignalAsync(_process.Id, "TERM");
        using var cancellation = new CancellationTokenSource(timeout);
        await _process.WaitForExitAsync(cancellation.Token);
        return (_process.ExitCode, clock.Elapsed);
    }

    public string Output()
    {
        lock (OutputGate)
        {
            _output.Flush();
        }
        using var reader = new StreamReader(new FileStream(OutputFile, FileMode.Open, FileAccess.Read, FileShare.ReadWrite));
        return reader.ReadToEnd();
    }

    private void Append(string? line)
    {
        if (line is not null)
        {
            lock (OutputGate)
            {
                _output.WriteLine(line);
            }
        }
    }

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }
        _disposed = true;
        Kill();
        _process.Dispose();
        lock (OutputGate)
        {
            _output.Dispose();
        }
    }
}
