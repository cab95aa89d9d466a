using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Pipelines.Core.Definitions;
using Pipelines.Scheduler.Schedules;

namespace Pipelines.Client;

/// <summary>
/// A schedule as written: the body of <c>POST /api/v1/schedules</c> (with <see cref="Pipeline"/>) and
/// of <c>PUT /api/v1/schedules/{pipeline}/{name}</c>. Fields left out take the defaults of the
/// definition file's <c>schedules:</c> entries.
/// </summary>
public record ScheduleSpec
{
    /// <summary>The pipeline the schedule runs; required to create one, implied by the URL to update one.</summary>
    public string? Pipeline { get; init; }

    /// <summary>Unique within the pipeline; required to create one.</summary>
    public string? Name { get; init; }

    /// <summary>Quartz cron with seconds (<c>0 0 3 * * ?</c>) or the 5-field form (<c>0 3 * * *</c>).</summary>
    public string? Cron { get; init; }

    /// <summary>IANA time zone; default UTC.</summary>
    public string? Timezone { get; init; }

    /// <summary>Input of each run, checked against the pipeline's parameters.</summary>
    public JsonObject? Payload { get; init; }

    /// <summary>False stores the schedule paused. Default true.</summary>
    public bool? Enabled { get; init; }

    /// <summary><c>fire_once</c> (default) or <c>skip</c>.</summary>
    public MisfirePolicy? Misfire { get; init; }

    /// <summary><c>allow</c> (default), <c>skip</c> or <c>queue</c>.</summary>
    public OverlapPolicy? Overlap { get; init; }

    public DateTimeOffset? StartAt { get; init; }
    public DateTimeOffset? EndAt { get; init; }
}

/// <summary>A stored schedule and when it fires.</summary>
public sealed record Schedule : ScheduleSpec
{
    public Schedule()
    {
    }

    /// <summary>A schedule with <paramref name="spec"/>'s fields.</summary>
    public Schedule(ScheduleSpec spec)
        : base(spec)
    {
    }

    /// <summary>Whether the definition file or the API defined it last.</summary>
    [JsonPropertyOrder(1)]
    public ScheduleSource Source { get; init; }

    [JsonPropertyOrder(1)]
    public ScheduleState State { get; init; }

    /// <summary>The coming fire times, UTC; none while paused or ended.</summary>
    [JsonPropertyOrder(1)]
    public IReadOnlyList<DateTimeOffset> NextFireTimes { get; init; } = [];

    [JsonPropertyOrder(1)]
    public DateTimeOffset? PreviousFireTime { get; init; }

    /// <summary>Fires held back by <c>overlap: queue</c> until the previous run finishes.</summary>
    [JsonPropertyOrder(1)]
    public int QueuedFires { get; init; }
}

/// <summary>A page of schedules, ordered by pipeline and name; <see cref="NextCursor"/> is null on the last page.</summary>
public sealed record ScheduleList(IReadOnlyList<Schedule> Items, string? NextCursor);
