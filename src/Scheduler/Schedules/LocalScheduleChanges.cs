using Quartz;

namespace Pipelines.Scheduler.Schedules;

/// <summary>
/// Schedules created or changed in this process, for <see cref="FireAheadJobStore"/>: a trigger due
/// before the fires it is waiting to record ends that wait, so that Quartz, which hears of the change
/// too, takes the earlier trigger in time. Changes made by another process reach Quartz at its next
/// poll instead, as they always do.
/// </summary>
internal sealed class LocalScheduleChanges : ISchedulerListener
{
    private readonly Lock _gate = new();
    private DateTimeOffset _waitingFor = DateTimeOffset.MaxValue;
    private CancellationTokenSource? _wake;

    public string Name => "pipelines-local-schedule-changes";

    public ValueTask JobScheduled(IScheduler scheduler, ITrigger trigger, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(trigger);
        lock (_gate)
        {
            if (trigger.NextFireTimeUtc < _waitingFor)
            {
                _wake?.Cancel();
            }
        }
        return ValueTask.CompletedTask;
    }

    /// <summary>A token cancelled when a trigger due before <paramref name="due"/> is scheduled here, until the wait is disposed.</summary>
    public Wait BeginWait(DateTimeOffset due)
    {
        var wake = new CancellationTokenSource();
        lock (_gate)
        {
            _waitingFor = due;
            _wake = wake;
        }
        return new Wait(this, wake);
    }

    public sealed class Wait(LocalScheduleChanges changes, CancellationTokenSource wake) : IDisposable
    {
        public CancellationToken Token => wake.Token;

        public void Dispose()
        {
            lock (changes._gate)
            {
                changes._waitingFor = DateTimeOffset.MaxValue;
                changes._wake = null;
            }
            wake.Dispose();
        }
    }
}
