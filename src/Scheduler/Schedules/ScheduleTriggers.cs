using System.Globalization;
using Pipelines.Core.Definitions;
using Quartz;

namespace Pipelines.Scheduler.Schedules;

/// <summary>
/// How a schedule maps onto Quartz: one durable job per schedule (its data is the
/// <see cref="StoredSchedule"/>), one cron trigger with the schedule's key, and, for
/// <c>overlap: queue</c>, one waiting trigger per held-back fire.
/// </summary>
internal static class ScheduleTriggers
{
    /// <summary>Group of the triggers that hold back a fire until the previous run of the schedule finished.</summary>
    public const string QueuedGroup = "pipelines-queued";

    private const string QueuedFireTimeKey = "queued_fire_time";

    /// <summary>
    /// Retries a fire whose run could not be stored (the database restarting). The run's idempotency
    /// key is the scheduled fire time, so a retry after a stored-but-unacknowledged run starts nothing twice.
    /// </summary>
    private static readonly Quartz.RetryPolicy FireRetry = Quartz.RetryPolicy.Fixed(3, TimeSpan.FromSeconds(2));

    public static IJobDetail Job(ScheduleKey key, StoredSchedule schedule) =>
        JobBuilder.Create<ScheduledRunJob>()
            .WithIdentity(key.JobKey)
            .WithDescription($"schedule {key}")
            // Durable: a schedule past its end_at has no trigger left and is still listed, as ended.
            .StoreDurably()
            // A fire whose replica dies before it has started the run is run again by another (the
            // run's idempotency key makes that safe); fires are recorded ahead of their time (FireAheadJobStore).
            .RequestRecovery()
            .UsingJobData(schedule.ToJobData())
            .Build();

    /// <summary>The cron trigger, starting at the next fire time after now (or at start_at); null when it would never fire.</summary>
    public static ITrigger? CronTrigger(ScheduleKey key, StoredSchedule schedule, TimeProvider clock)
    {
        var now = clock.GetUtcNow();
        var builder = TriggerBuilder.Create(clock)
            .WithIdentity(key.TriggerKey)
            .ForJob(key.JobKey)
            .WithCronSchedule(schedule.QuartzCron, cron => cron
                .InTimeZone(schedule.Zone)
                .WithMisfireInstruction(schedule.Misfire switch
                {
                    MisfirePolicy.Skip => CronTriggerMisfireInstruction.DoNothing,
                    _ => CronTriggerMisfireInstruction.FireAndProceed,
                }))
            .WithRetryPolicy(FireRetry)
            .StartAt(schedule.StartAt is { } start && start > now ? start : now)
            .EndAt(schedule.EndAt);
        var trigger = builder.Build();
        return trigger.GetFireTimeAfter(now) is null ? null : trigger;
    }

    /// <summary>A trigger that re-checks every <paramref name="interval"/> whether the held-back fire at <paramref name="fireTime"/> may start.</summary>
    public static ITrigger QueuedFire(ScheduleKey key, DateTimeOffset fireTime, TimeSpan interval, TimeProvider clock) =>
        TriggerBuilder.Create(clock)
            .WithIdentity(QueuedTriggerKey(key, fireTime))
            .ForJob(key.JobKey)
            .UsingJobData(QueuedFireTimeKey, fireTime.UtcDateTime.ToString("O", CultureInfo.InvariantCulture))
            .StartAt(clock.GetUtcNow() + interval)
            .WithSimpleSchedule(simple => simple
                .WithInterval(interval)
                .RepeatForever()
                // Each fire of this trigger is only a check; after downtime one check is enough.
                .WithMisfireInstruction(SimpleTriggerMisfireInstruction.NextWithRemainingCount))
            .Build();

    public static TriggerKey QueuedTriggerKey(ScheduleKey key, DateTimeOffset fireTime) =>
        new($"{key}@{fireTime.UtcDateTime.ToString("O", CultureInfo.InvariantCulture)}", QueuedGroup);

    /// <summary>The fire time a queued trigger holds, or null for the schedule's cron trigger.</summary>
    public static DateTimeOffset? QueuedFireTimeOf(ITrigger trigger) =>
        trigger.Key.Group == QueuedGroup && trigger.JobDataMap.TryGetValue(QueuedFireTimeKey, out var value) && value is string text
            ? DateTimeOffset.Parse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal)
            : null;

    /// <summary>
    /// Of a fire Quartz runs again because the replica that fired it stopped: the group of the trigger
    /// that fired it and the time that fire was due (Quartz keeps whole seconds; cron fires have no more).
    /// </summary>
    public static (string Group, DateTimeOffset DueTime) RecoveredFireOf(IJobExecutionContext context)
    {
        var data = context.MergedJobDataMap;
        return (
            data.GetString(SchedulerConstants.FailedJobOriginalTriggerGroup) ?? "",
            DateTimeOffset.Parse(data.GetString(SchedulerConstants.FailedJobOriginalTriggerScheduledFireTime)!, CultureInfo.InvariantCulture));
    }

    /// <summary>The fire time encoded in a queued trigger's name (listings do not load trigger data).</summary>
    public static DateTimeOffset QueuedFireTimeOf(TriggerKey key) =>
        DateTimeOffset.Parse(key.Name[(key.Name.LastIndexOf('@') + 1)..], CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal);

    /// <summary>Fire times of <paramref name="trigger"/> from <paramref name="nextFireTime"/> (the stored one) on, at most <paramref name="count"/>.</summary>
    public static IReadOnlyList<DateTimeOffset> NextFireTimes(ITrigger trigger, DateTimeOffset? nextFireTime, DateTimeOffset now, int count)
    {
        var times = new List<DateTimeOffset>(Math.Max(0, count));
        var next = nextFireTime is { } due && due >= now ? due : trigger.GetFireTimeAfter(now);
        while (times.Count < count && next is { } time)
        {
            times.Add(time);
            next = trigger.GetFireTimeAfter(time);
        }
        return times;
    }
}
