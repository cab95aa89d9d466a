using System.Collections.Concurrent;
using System.Globalization;
using Pipelines.Tests;

namespace Pipelines.Faults.Engine;

/// <summary>A scheduler event a replica printed: a fire (5001), a fire the idempotency key absorbed (5002), a misfire decision (5003/5004), ...</summary>
internal sealed record SchedulerEvent(string Replica, int Id, string Schedule, DateTimeOffset Time, DateTimeOffset At);

/// <summary>The harness's handle on a scheduler replica process: start, SIGKILL, SIGSTOP/SIGCONT, and the events it printed.</summary>
internal sealed class ReplicaProcess : IDisposable
{
    /// <summary>What the replica prints once its scheduler has started, followed by its Quartz instance id.</summary>
    public const string ReadyLine = "READY";

    private readonly ChildProcess _process;
    private readonly TaskCompletionSource<string> _ready;

    private ReplicaProcess(string name, ChildProcess process, TaskCompletionSource<string> ready)
    {
        Name = name;
        _process = process;
        _ready = ready;
    }

    public string Name { get; }

    public int ProcessId => _process.ProcessId;

    public bool HasExited => _process.HasExited;

    /// <summary>Completes when the replica's scheduler has started: on a busy machine that can be many seconds after the process.</summary>
    public Task Ready => _ready.Task;

    /// <summary>The replica's Quartz instance id (<c>qrtz_fired_triggers.instance_name</c>), once <see cref="Ready"/>.</summary>
    public string? InstanceId => _ready.Task.IsCompletedSuccessfully ? _ready.Task.Result : null;

    public static ReplicaProcess Start(string name, IReadOnlyDictionary<string, string> environment, string folder, ConcurrentQueue<SchedulerEvent> events)
    {
        var ready = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        void Read(string line)
        {
            if (line.StartsWith(ReadyLine + " ", StringComparison.Ordinal))
            {
                ready.TrySetResult(line[(ReadyLine.Length + 1)..]);
                return;
            }
            var parts = line.Split(' ');
            if (parts is ["EVENT", var id, var schedule, var time, ..] && DateTimeOffset.TryParse(time, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var at))
            {
                events.Enqueue(new SchedulerEvent(name, int.Parse(id, CultureInfo.InvariantCulture), schedule, at, DateTimeOffset.UtcNow));
            }
        }
        var process = ChildProcess.Start(
            Path.Combine(AppContext.BaseDirectory, "pipelines-faults.dll"), ["scheduler-replica"], environment, AppContext.BaseDirectory,
            Read, pid => Path.Combine(folder, $"{name}-{pid}.log"));
        return new ReplicaProcess(name, process, ready);
    }

    public void Kill() => _process.Kill();

    public Task PauseAsync() => _process.SignalAsync("STOP");

    public Task ResumeAsync() => _process.SignalAsync("CONT");

    // A paused replica would not die of SIGTERM; the SIGKILL of Dispose works on a stopped process.
    public void Dispose() => _process.Dispose();
}
