using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Pipelines.Scheduler.Hosting;
using Quartz;
using Quartz.Extensibility;
using Quartz.Impl;

namespace Pipelines.Scheduler.Schedules;

/// <summary>
/// Quartz's database store, except that the triggers a round takes for a coming fire time are fired
/// (recorded as fired, their next fire time written) <see cref="SchedulerOptions.FireAhead"/> before that
/// time rather than at it. <see cref="ScheduledRunJob"/> then waits for the time itself before it starts
/// the run.
/// </summary>
/// <remarks>
/// Quartz fires a trigger taken ahead of its time in a transaction of several statements per trigger,
/// one after another, at the moment it is due; on a busy database that transaction stretches (110-389 ms
/// for a burst of 33 where it usually takes 17-40 ms, bench/README.md), and every run of the burst
/// started that much late. Fired ahead, the transaction is over before the due time, and the run starts
/// on time. A fire made ahead is a fire like any other: a replica that dies before the run starts
/// leaves it to the cluster's recovery (the schedule's job requests recovery), and a replica failed
/// out before it fires still fires nothing (<see cref="FencedPostgreSqlDelegate"/>).
/// </remarks>
internal sealed class FireAheadJobStore(
    IJobStore store,
    LocalScheduleChanges changes,
    IOptions<SchedulerOptions> options,
    TimeProvider clock,
    ILogger<FireAheadJobStore> logger)
    : DelegatingJobStore(store), IDisposable
{
    private readonly TimeSpan _fireAhead = options.Value.FireAhead;
    private CancellationTokenSource _firing = new();

    public override async ValueTask<TriggerAcquisitionResult> AcquireNextTriggersAndFireDue(TriggerAcquisitionRequest request, CancellationToken cancellationToken = default)
    {
        // Quartz looks a poll interval ahead and polls at most that far apart; looking FireAhead further
        // takes every trigger at least FireAhead before its time, however sparse the schedules.
        var result = await base.AcquireNextTriggersAndFireDue(request with { NoLaterThan = request.NoLaterThan + _fireAhead }, cancellationToken);
        var taken = result.Pending;
        if (taken.Count == 0 || _fireAhead == TimeSpan.Zero)
        {
            return result;
        }

        // Every trigger of a round is due at the first one's time or before (Quartz's batch window).
        if (taken[0].NextFireTimeUtc is { } due && due - _fireAhead - clock.GetUtcNow() is { Ticks: > 0 } wait)
        {
            using var earlier = changes.BeginWait(due);
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(Volatile.Read(ref _firing).Token, earlier.Token);
            try
            {
                await Task.Delay(wait, clock, stop.Token);
            }
            catch (OperationCanceledException)
            {
                // Standby, shutdown, or a trigger due sooner scheduled here: Quartz waits for what it took
                // as for its own pending triggers, releasing them if it must.
                return result;
            }
        }

        List<TriggerFiredResult> fired;
        try
        {
            fired = await base.TriggersFired(taken, cancellationToken);
        }
        catch (SchedulerException exception)
        {
            // Left pending, Quartz fires them at their time itself, and reports it if that fails too.
            logger.FireAheadFailed(taken.Count, exception);
            return result;
        }
        result.Due.AddRange(taken);
        result.Fired.AddRange(fired);
        taken.Clear();
        return result;
    }

    public override ValueTask SchedulerPaused(CancellationToken cancellationToken = default)
    {
        Volatile.Read(ref _firing).Cancel();
        return base.SchedulerPaused(cancellationToken);
    }

    public override ValueTask SchedulerResumed(CancellationToken cancellationToken = default)
    {
        Interlocked.Exchange(ref _firing, new CancellationTokenSource()).Dispose();
        return base.SchedulerResumed(cancellationToken);
    }

    public override ValueTask Shutdown(CancellationToken cancellationToken = default)
    {
        Volatile.Read(ref _firing).Cancel();
        return base.Shutdown(cancellationToken);
    }

    public void Dispose() => _firing.Dispose();
}
