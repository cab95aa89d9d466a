using Pipelines.Core.Runs;
using Quartz;

namespace Pipelines.Scheduler.Schedules;

/// <summary>
/// Names a schedule: its pipeline and its name within the pipeline, written <c>pipeline/name</c>
/// (as <see cref="Core.Runs.RunRecord.Schedule"/> records it).
/// </summary>
public readonly record struct ScheduleKey(string Pipeline, string Name)
{
    /// <summary>The Quartz group of every schedule's job and cron trigger.</summary>
    internal const string Group = "pipelines";

    public override string ToString() => $"{Pipeline}/{Name}";

    /// <summary>The run's idempotency key for the fire at <paramref name="fireTime"/>: one run per schedule and fire time, whichever replica fires.</summary>
    public string IdempotencyKeyFor(DateTimeOffset fireTime) => $"{RunTriggers.ScheduleKeyPrefix}{this}:{fireTime.UtcDateTime:O}";

    internal JobKey JobKey => new(ToString(), Group);

    internal TriggerKey TriggerKey => new(ToString(), Group);

    internal static ScheduleKey FromJobKey(JobKey key)
    {
        var slash = key.Name.IndexOf('/', StringComparison.Ordinal);
        return new ScheduleKey(key.Name[..slash], key.Name[(slash + 1)..]);
    }
}
