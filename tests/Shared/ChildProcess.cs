using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace Pipelines.Tests;

/// <summary>
/// A program of this repository (<c>dotnet &lt;assembly&gt;</c>) as a process of its own, configured
/// through its environment as a deployment configures it. What it prints is kept (in memory, or in a
/// log file when one is named) and each line is also handed to the caller's parser. Stopped with
/// signals, as an orchestrator stops it, and never left running: disposing kills it.
/// </summary>
internal sealed class ChildProcess : IDisposable
{
    private readonly Process _process;
    private readonly Lock _outputGate = new();
    private readonly StringBuilder? _memory;
    private readonly StreamWriter? _file;
    private readonly string? _filePath;
    private bool _disposed;

    private ChildProcess(Process process, string? filePath)
    {
        _process = process;
        _filePath = filePath;
        if (filePath is null)
        {
            _memory = new StringBuilder();
        }
        else
        {
            _file = new StreamWriter(filePath, append: true) { AutoFlush = true };
        }
    }

    public int ProcessId => _process.Id;

    public bool HasExited => _process.HasExited;

    public int ExitCode => _process.ExitCode;

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

    /// <summary>Everything the process printed so far, standard output and error interleaved.</summary>
    public string Output
    {
        get
        {
            lock (_outputGate)
            {
                if (_memory is not null)
                {
                    return _memory.ToString();
                }
                if (!_disposed)
                {
                    _file!.Flush();
                }
            }
            using var reader = new StreamReader(new FileStream(_filePath!, FileMode.Open, FileAccess.Read, FileShare.ReadWrite));
            return reader.ReadToEnd();
        }
    }

    /// <summary>
    /// Starts <c>dotnet <paramref name="assembly"/> <paramref name="arguments"/></c>. <paramref name="onLine"/>
    /// sees every line, from the first. <paramref name="logFile"/>, given the process id, names the
    /// file its output is kept in; without it the output is kept in memory.
    /// </summary>
    public static ChildProcess Start(
        string assembly,
        IEnumerable<string> arguments,
        IReadOnlyDictionary<string, string> environment,
        string workingDirectory,
        Action<string>? onLine = null,
        Func<int, string>? logFile = null)
    {
        var start = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add(assembly);
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }
        foreach (var (key, value) in environment)
        {
            start.Environment[key] = value;
        }
        var process = Process.Start(start) ?? throw new InvalidOperationException($"could not start {assembly}");
        var child = new ChildProcess(process, logFile?.Invoke(process.Id));
        void Read(string? line)
        {
            if (line is not null)
            {
                child.Keep(line);
                onLine?.Invoke(line);
            }
        }
        process.OutputDataReceived += (_, e) => Read(e.Data);
        process.ErrorDataReceived += (_, e) => Read(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return child;
    }

    public Task WaitForExitAsync(CancellationToken cancellationToken = default) => _process.WaitForExitAsync(cancellationToken);

    /// <summary>Sends a signal (<c>TERM</c>, <c>STOP</c>, <c>CONT</c>, ...) with <c>kill</c>.</summary>
    public async Task SignalAsync(string signal)
    {
        using var kill = Process.Start("kill", [$"-{signal}", _process.Id.ToString(CultureInfo.InvariantCulture)]);
        await kill.WaitForExitAsync();
        if (kill.ExitCode != 0 && !_process.HasExited)
        {
            throw new InvalidOperationException($"kill -{signal} {_process.Id} exited with {kill.ExitCode}");
        }
    }

    /// <summary>SIGTERM, as Kubernetes sends before it kills a pod; the exit code, or a timeout when it does not exit within <paramref name="timeout"/>.</summary>
    public async Task<int> TerminateAsync(TimeSpan timeout)
    {
        await SignalAsync("TERM");
        using var cancellation = new CancellationTokenSource(timeout);
        await _process.WaitForExitAsync(cancellation.Token);
        return _process.ExitCode;
    }

    /// <summary>SIGTERM, then SIGKILL if it has not exited within <paramref name="grace"/>.</summary>
    public async Task StopAsync(TimeSpan grace)
    {
        if (_process.HasExited)
        {
            return;
        }
        try
        {
            await TerminateAsync(grace);
        }
        catch (OperationCanceledException)
        {
            Kill();
        }
    }

    /// <summary>SIGKILL (also to its children): no chance to finish, hand back or clean up anything. Works on a stopped process too.</summary>
    public void Kill()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
        }
        _process.WaitForExit();
    }

    private void Keep(string line)
    {
        lock (_outputGate)
        {
            if (_memory is not null)
            {
                _memory.AppendLine(line);
            }
            else if (!_disposed)
            {
                _file!.WriteLine(line);
            }
        }
    }

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }
        Kill();
        _process.Dispose();
        lock (_outputGate)
        {
            _disposed = true;
            _file?.Dispose();
        }
    }
}
