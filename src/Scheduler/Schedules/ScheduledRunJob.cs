using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Pipelines.Core.Coordination;
using Pipelines.Core.Persistence;
using Pipelines.Core.Planning;
using Pipelines.Core.Runs;
using Pipelines.Scheduler.Hosting;
using Quartz;
using MisfirePolicy = Pipelines.Core.Definitions.MisfirePolicy;
using OverlapPolicy = Pipelines.Core.Definitions.OverlapPolicy;

namespace Pipelines.Scheduler.Schedules;

/// <summary>
/// What a fire does: apply the schedule's overlap policy, then start a run through the same launcher
/// as the API. The run's idempotency key is the schedule and the scheduled fire time, so a fire that
/// two replicas, a retry or a crash recovery repeat still starts one run.
/// </summary>
internal sealed class ScheduledRunJob(
    RunLauncher launcher,
    RunStore store,
    StandingFires standingFires,
    TimeProvider clock,
    IOptions<SchedulerOptions> options,
    ILogger<ScheduledRunJob> logger) : IJob
{
    private static readonly RunState[] Unfinished = [.. Enum.GetValues<RunState>().Where(s => !s.IsTerminal())];

    /// <summary>How long a fire refused by its stopping scheduler waits for the stop to interrupt it.</summary>
    private static readonly TimeSpan StopGrace = TimeSpan.FromSeconds(10);

    /// <summary>How often a fire waiting for an earlier fire of its schedule looks again.</summary>
    private static readonly TimeSpan EarlierFirePoll = TimeSpan.FromMilliseconds(50);

    public async ValueTask Execute(IJobExecutionContext context, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(context);
        try
        {
            await FireAsync(context, cancellationToken);
        }
        catch (SchedulerException) when (context.Scheduler.Status is SchedulerStatus.ShuttingDown or SchedulerStatus.Shutdown)
        {
            // The replica is stopping and refused this fire's question. Its stop interrupts the fire, which
            // then hands it back to the cluster (recovery) instead of losing it.
            await Task.Delay(StopGrace, cancellationToken);
            throw;
        }
    }

    private async Task FireAsync(IJobExecutionContext context, CancellationToken cancellationToken)
    {
        var key = ScheduleKey.FromJobKey(context.JobDetail.Key);
        var schedule = StoredSchedule.FromJobData(context.JobDetail.JobDataMap);
        DateTimeOffset fireTime;
        DateTimeOffset? queuedFireTime = null;
        if (context.Recovering)
        {
            var (group, dueTime) = ScheduleTriggers.RecoveredFireOf(context);
            if (group == ScheduleTriggers.QueuedGroup)
            {
                return; // Its queued trigger is still there and fires again.
            }
            if (schedule.Misfire == MisfirePolicy.Skip && clock.GetUtcNow() - dueTime > options.Value.MisfireThreshold)
            {
                logger.RecoveredFireSkipped(key, dueTime);
                return;
            }
            logger.FireRecovered(key, dueTime);
            fireTime = dueTime;
        }
        else
        {
            queuedFireTime = ScheduleTriggers.QueuedFireTimeOf(context.Trigger);
            fireTime = queuedFireTime ?? DueTimeOf(context, schedule);
            // A fire recorded ahead of its time (FireAheadJobStore) starts its run at the time, and only if
            // the schedule was not paused or deleted meanwhile: as if it had been recorded at its time.
            if (context.ScheduledFireTimeUtc is { } scheduled && context.FireTimeUtc < scheduled
                && !await standingFires.StandsAtAsync(context.Trigger.Key, scheduled, cancellationToken))
            {
                logger.FireWithdrawn(key, fireTime);
                return;
            }
        }

        if (schedule.Overlap != OverlapPolicy.Allow)
        {
            await WaitForEarlierFiresAsync(context, fireTime, cancellationToken);
        }
        if (schedule.Overlap == OverlapPolicy.Skip && await UnfinishedRunBeforeAsync(key, fireTime, cancellationToken) is { } running)
        {
            logger.OverlapSkipped(key, fireTime, running.Id, running.State.ToString());
            return;
        }
        if (schedule.Overlap == OverlapPolicy.Queue && await MustWaitAsync(context.Scheduler, key, fireTime, cancellationToken))
        {
            if (queuedFireTime is null)
            {
                await EnqueueAsync(context.Scheduler, key, fireTime, cancellationToken);
            }
            return;
        }

        await LaunchAsync(key, schedule, fireTime, cancellationToken);
        if (queuedFireTime is not null)
        {
            await context.Scheduler.UnscheduleJob(context.Trigger.Key, cancellationToken);
        }
    }

    /// <summary>
    /// An overlap policy decides only once every earlier fire of the schedule has decided: one still under
    /// way (late, or recorded ahead of its time and waiting for it) may be about to store the run this
    /// fire must see. Fires under way are Quartz's fired-trigger rows, on every replica.
    /// </summary>
    private async Task WaitForEarlierFiresAsync(IJobExecutionContext context, DateTimeOffset fireTime, CancellationToken cancellationToken)
    {
        var job = context.JobDetail.Key;
        var instance = options.Value.InstanceName;
        var entry = context.FireInstanceId;
        var scheduled = fireTime.UtcTicks;
        var giveUp = clock.GetUtcNow() + options.Value.MisfireThreshold;
        while (await store.ReadAsync(c => c.Database.SqlQuery<int>($"""
                   SELECT COUNT(*) AS "Value" FROM qrtz_fired_triggers
                   WHERE sched_name = {instance} AND job_name = {job.Name} AND job_group = {job.Group}
                     AND state = 'EXECUTING' AND sched_time < {scheduled} AND entry_id <> {entry}
                   """).SingleAsync(cancellationToken)) > 0
               && clock.GetUtcNow() < giveUp)
        {
            await Task.Delay(EarlierFirePoll, clock, cancellationToken);
        }
    }

    /// <summary>
    /// The time this fire was due. Quartz reports the first fire after a misfire under the time of the
    /// fire that was missed: that is the one run <c>fire_once</c> makes for it; after a skip, the fire
    /// is the schedule's next time in its own right, which the trigger now holds as its previous fire.
    /// </summary>
    private static DateTimeOffset DueTimeOf(IJobExecutionContext context, StoredSchedule schedule) =>
        schedule.Misfire == MisfirePolicy.Skip && context.Trigger.PreviousFireTimeUtc is { } due
            ? due
            : context.ScheduledFireTimeUtc ?? context.FireTimeUtc;

    /// <summary>Starts the fire's run, or logs why it never will (the pipeline or its parameters changed); throws when it may on a retry.</summary>
    private async Task LaunchAsync(ScheduleKey key, StoredSchedule schedule, DateTimeOffset fireTime, CancellationToken cancellationToken)
    {
        var idempotencyKey = key.IdempotencyKeyFor(fireTime);
        try
        {
            var launched = await launcher.StartAsync(new RunRequest
            {
                Pipeline = key.Pipeline,
                Payload = schedule.Payload,
                IdempotencyKey = idempotencyKey,
                Trigger = RunTriggers.Schedule,
                Schedule = key.ToString(),
                FireTime = fireTime,
            }, cancellationToken);
            if (launched.Created)
            {
                logger.Fired(key, fireTime, launched.RunId);
            }
            else
            {
                logger.AlreadyFired(key, fireTime, launched.RunId);
            }
        }
        catch (UnknownPipelineException exception)
        {
            logger.FireRefused(key, fireTime, exception.Message + " (it is no longer in the definition file)");
        }
        catch (InvalidRunInputException exception)
        {
            logger.FireRefused(key, fireTime, "the schedule's payload does not fit the pipeline's parameters: " + exception.Message);
        }
        catch (Exception exception) when (exception is not OperationCanceledException)
        {
            // The launcher stores the run before it sends StartRun: a stored run is accepted and the
            // coordinator's sweep starts it, so only a fire without a stored run is a failure.
            var stored = await store.ReadAsync(context => context.Runs
                .Where(r => r.IdempotencyKey == idempotencyKey)
                .Select(r => (Guid?)r.Id)
                .FirstOrDefaultAsync(cancellationToken));
            if (stored is { } runId)
            {
                logger.StartNotSent(key, fireTime, runId, exception);
                return;
            }
            logger.FireFailed(key, fireTime, exception);
            throw;
        }
    }

    private Task<RunRecord?> UnfinishedRunBeforeAsync(ScheduleKey key, DateTimeOffset fireTime, CancellationToken cancellationToken)
    {
        var schedule = key.ToString();
        return store.ReadAsync(context => context.Runs
            .Where(r => r.Schedule == schedule && r.FireTime < fireTime && Unfinished.Contains(r.State))
            .OrderBy(r => r.FireTime)
            .Select(r => new RunRecord { Id = r.Id, State = r.State })
            .FirstOrDefaultAsync(cancellationToken));
    }

    /// <summary>
    /// A queued fire waits for every earlier fire: one still queued, or one whose run has not finished.
    /// The queued triggers are read first: a queued fire that launches stores its run before it deletes
    /// its trigger, so a fire that no longer sees that trigger is sure to see the run.
    /// </summary>
    private async Task<bool> MustWaitAsync(IScheduler scheduler, ScheduleKey key, DateTimeOffset fireTime, CancellationToken cancellationToken)
    {
        var queued = await QueuedFireTimesAsync(scheduler, key, cancellationToken);
        if (queued.Any(t => t < fireTime))
        {
            return true;
        }
        return await UnfinishedRunBeforeAsync(key, fireTime, cancellationToken) is not null;
    }

    private async Task EnqueueAsync(IScheduler scheduler, ScheduleKey key, DateTimeOffset fireTime, CancellationToken cancellationToken)
    {
        var queued = await QueuedFireTimesAsync(scheduler, key, cancellationToken);
        if (queued.Count >= options.Value.MaxQueuedFires)
        {
            logger.QueueFull(key, fireTime, queued.Count);
            return;
        }
        try
        {
            await scheduler.ScheduleJob(ScheduleTriggers.QueuedFire(key, fireTime, options.Value.QueueCheckInterval, clock), default, cancellationToken);
            logger.OverlapQueued(key, fireTime);
        }
        catch (ObjectAlreadyExistsException)
        {
            // Queued before, by a fire that was recovered or retried.
        }
    }

    private static async Task<IReadOnlyList<DateTimeOffset>> QueuedFireTimesAsync(IScheduler scheduler, ScheduleKey key, CancellationToken cancellationToken)
    {
        var page = await scheduler.QueryTriggers(new TriggerQuery { Job = key.JobKey, Group = GroupMatcher<TriggerKey>.GroupEquals(ScheduleTriggers.QueuedGroup) }, cancellationToken);
        return [.. page.Items.Select(t => ScheduleTriggers.QueuedFireTimeOf(t.Key))];
    }
}
