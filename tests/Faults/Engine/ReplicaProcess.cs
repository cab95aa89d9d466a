using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using Pipelines.Faults.Services;

namespace Pipelines.Faults.Engine;

/// <summary>A scheduler event a replica printed: a fire (5001), a fire the idempotency key absorbed (5002), a misfire decision (5003/5004), ...</summary>
internal sealed record SchedulerEvent(string Replica, int Id, string Schedule, DateTimeOffset Time, DateTimeOffset At);

/// <summary>The harness's handle on a scheduler replica process: start, SIGKILL, SIGSTOP/SIGCONT, and the events it printed.</summary>
internal sealed class ReplicaProcess : IDisposable
{
    /// <summary>What the replica prints once its scheduler has started.</summary>
    public const string ReadyLine = "READY";

    private static readonly Lock OutputGate = new();
    private readonly TaskCompletionSource _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Process _process;
    private readonly StreamWriter _output;
    private readonly ConcurrentQueue<SchedulerEvent> _events;

    private ReplicaProcess(string name, Process process, StreamWriter output, ConcurrentQueue<SchedulerEvent> events)
    {
        Name = name;
        _process = process;
        _output = output;
        _events = events;
    }

    public string Name { get; }

    public int ProcessId => _process.Id;

    public bool HasExited => _process.HasExited;

    /// <summary>Completes when the replica's scheduler has started: on a busy machine that can be many seconds after the process.</summary>
    public Task Ready => _ready.Task;

    public static ReplicaProcess Start(string name, IReadOnlyDictionary<string, string> environment, string folder, ConcurrentQueue<SchedulerEvent> events)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = AppContext.BaseDirectory,
        };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "pipelines-faults.dll"));
        start.ArgumentList.Add("scheduler-replica");
        foreach (var (key, value) in environment)
        {
            start.Environment[key] = value;
        }
        var process = Process.Start(start) ?? throw new InvalidOperationException("could not start a scheduler replica");
        var output = new StreamWriter(Path.Combine(folder, $"{name}-{process.Id}.log"), append: true) { AutoFlush = true };
        var replica = new ReplicaProcess(name, process, output, events);
        process.OutputDataReceived += (_, e) => replica.Read(e.Data);
        process.ErrorDataReceived += (_, e) => replica.Read(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return replica;
    }

    public void Kill()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
        }
        _process.WaitForExit();
    }

    public Task PauseAsync() => Shell.SignalAsync(_process.Id, "STOP");

    public Task ResumeAsync() => Shell.SignalAsync(_process.Id, "CONT");

    private void Read(string? line)
    {
        if (line is null)
        {
            return;
        }
        lock (OutputGate)
        {
            _output.WriteLine(line);
        }
        if (line == ReadyLine)
        {
            _ready.TrySetResult();
            return;
        }
        var parts = line.Split(' ');
        if (parts is ["EVENT", var id, var schedule, var time, ..] && DateTimeOffset.TryParse(time, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var at))
        {
            _events.Enqueue(new SchedulerEvent(Name, int.Parse(id, CultureInfo.InvariantCulture), schedule, at, DateTimeOffset.UtcNow));
        }
    }

    public void Dispose()
    {
        if (!_process.HasExited)
        {
            // A paused replica would not die of SIGTERM; SIGKILL works on a stopped process.
            Kill();
        }
        _process.Dispose();
        lock (OutputGate)
        {
            _output.Dispose();
        }
    }
}
