using Pipelines.Core.Definitions;

namespace Pipelines.Scheduler.Schedules;

public enum ScheduleState
{
    /// <summary>Fires at its next fire times.</summary>
    Active,
    /// <summary>Paused (or declared with <c>enabled: false</c>); fires missed while paused are not made up on resume.</summary>
    Paused,
    /// <summary>No fire time is left: <c>end_at</c> has passed.</summary>
    Ended,
    /// <summary>Quartz stopped firing it after repeated failures to fire; see the scheduler's log. Resume clears it.</summary>
    Error,
}

/// <summary>A schedule as the API shows it.</summary>
/// <param name="Key">The pipeline and the schedule's name.</param>
/// <param name="Definition">What was written; <c>Enabled</c> is false while the schedule is paused.</param>
/// <param name="Source">Whether the definition file or the API defined it last.</param>
/// <param name="State">Whether it fires.</param>
/// <param name="NextFireTimes">The coming fire times in UTC, as many as asked for; none while paused or ended.</param>
/// <param name="PreviousFireTime">The last time it fired, if it has.</param>
/// <param name="QueuedFires">Fires held back by <c>overlap: queue</c> until the previous run finishes.</param>
public sealed record ScheduleDescription(
    ScheduleKey Key,
    ScheduleDefinition Definition,
    ScheduleSource Source,
    ScheduleState State,
    IReadOnlyList<DateTimeOffset> NextFireTimes,
    DateTimeOffset? PreviousFireTime,
    int QueuedFires);

/// <summary>One page of schedules, ordered by pipeline and name; <see cref="NextCursor"/> is null on the last page.</summary>
public sealed record SchedulePage(IReadOnlyList<ScheduleDescription> Schedules, string? NextCursor);

/// <summary>What a reload of the definition file's schedules did.</summary>
public sealed record FileSyncResult(int Created, int Updated, int Unchanged, int Removed, int KeptFromApi);
