using System.Diagnostics;
using System.Globalization;

namespace Pipelines.Bench.Benchmarks.Engine;

/// <summary>
/// The real worker program (<c>pipelines-worker.dll</c>, built beside the benchmark) as a process
/// of its own, configured through the environment as in a deployment; so its working set is the
/// worker's alone. Its output is kept (the last lines) to explain an early exit.
/// </summary>
internal sealed class WorkerProcess : IDisposable
{
    private const int KeptLines = 40;

    private readonly Process _process;
    private readonly Queue<string> _output = new();

    private WorkerProcess(Process process) => _process = process;

    public static string Program => Path.Combine(AppContext.BaseDirectory, "pipelines-worker.dll");

    public static WorkerProcess Start(string workingDirectory, IReadOnlyDictionary<string, string> environment)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add(Program);
        foreach (var (name, value) in environment)
        {
            start.Environment[name] = value;
        }
        var process = new Process { StartInfo = start };
        var worker = new WorkerProcess(process);
        process.OutputDataReceived += (_, line) => worker.Keep(line.Data);
        process.ErrorDataReceived += (_, line) => worker.Keep(line.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return worker;
    }

    public bool HasExited => _process.HasExited;

    public long WorkingSet
    {
        get
        {
            _process.Refresh();
            return _process.WorkingSet64;
        }
    }

    /// <summary>The largest working set so far (<c>VmHWM</c>).</summary>
    public long PeakWorkingSet
    {
        get
        {
            _process.Refresh();
            return _process.PeakWorkingSet64;
        }
    }

    public string RecentOutput
    {
        get
        {
            lock (_output)
            {
                return string.Join(Environment.NewLine, _output);
            }
        }
    }

    /// <summary>Stops the worker as an orchestrator would, with SIGTERM, and kills it if it has not exited within <paramref name="grace"/>.</summary>
    public async Task StopAsync(TimeSpan grace)
    {
        if (_process.HasExited)
        {
            return;
        }
        using (var terminate = Process.Start("kill", ["-TERM", _process.Id.ToString(CultureInfo.InvariantCulture)]))
        {
            await terminate.WaitForExitAsync();
        }
        using var timeout = new CancellationTokenSource(grace);
        try
        {
            await _process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }
    }

    public void Dispose()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            _process.WaitForExit();
        }
        _process.Dispose();
    }

    private void Keep(string? line)
    {
        if (line is null)
        {
            return;
        }
        lock (_output)
        {
            _output.Enqueue(line);
            if (_output.Count > KeptLines)
            {
                _output.Dequeue();
            }
        }
    }
}
