using System.Diagnostics.CodeAnalysis;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Pipelines.Core.Runs;

namespace Pipelines.Client;

/// <summary>Body of <c>POST /api/v1/runs</c>.</summary>
public sealed record StartRunRequest
{
    /// <summary>The pipeline to run.</summary>
    public string? Pipeline { get; init; }

    /// <summary>The run's input (the <c>event</c> its steps receive), checked against the pipeline's parameters.</summary>
    public JsonObject? Payload { get; init; }
}

/// <summary>Body of <c>POST /api/v1/runs/{id}/retry</c>; empty to retry with the original payload.</summary>
public sealed record RetryRunRequest
{
    /// <summary>Replaces the failed run's payload when given.</summary>
    public JsonObject? Payload { get; init; }
}

/// <summary>
/// The run a start or retry resolved to; <see cref="Created"/> is false when the
/// <c>Idempotency-Key</c> was seen before: this is the run it started then.
/// </summary>
public sealed record RunStarted(Guid Id, string Pipeline, RunState State, bool Created);

/// <summary>A run as listed: what it is and where it stands, without its steps.</summary>
public record RunSummary
{
    public required Guid Id { get; init; }
    public required string Pipeline { get; init; }
    public required RunState State { get; init; }

    /// <summary><c>api</c>, <c>cli</c>, <c>schedule</c>, <c>retry</c> or <c>bus</c>.</summary>
    public required string Trigger { get; init; }

    /// <summary><c>pipeline/name</c> of the schedule that started it.</summary>
    public string? Schedule { get; init; }

    public DateTimeOffset? FireTime { get; init; }
    public string? IdempotencyKey { get; init; }

    /// <summary>The failed or cancelled run this one retries.</summary>
    public Guid? RetryOf { get; init; }

    public required DateTimeOffset CreatedAt { get; init; }
    public DateTimeOffset? StartedAt { get; init; }
    public DateTimeOffset? FinishedAt { get; init; }
    public string? FailedStep { get; init; }
    public string? Error { get; init; }
}

/// <summary>A run with its input and every step's state, attempts, timings, output and error.</summary>
public sealed record Run : RunSummary
{
    public Run()
    {
    }

    /// <summary>A run with <paramref name="summary"/>'s fields; set <see cref="Input"/> and <see cref="Steps"/>.</summary>
    [SetsRequiredMembers]
    public Run(RunSummary summary)
        : base(summary)
    {
    }

    [JsonPropertyOrder(1)]
    public JsonObject Input { get; init; } = [];

    [JsonPropertyOrder(1)]
    public IReadOnlyList<RunStep> Steps { get; init; } = [];

    public RunStep? Step(string name) => Steps.FirstOrDefault(s => s.Name == name);
}

public sealed record RunStep
{
    public required string Name { get; init; }
    public required StepState State { get; init; }

    /// <summary>The current (or last) attempt's number; 0 before the step first started.</summary>
    public int Attempt { get; init; }

    public DateTimeOffset? StartedAt { get; init; }
    public DateTimeOffset? FinishedAt { get; init; }

    /// <summary>What the step returned: JSON, or a string when its output is not JSON.</summary>
    public JsonNode? Output { get; init; }

    public StepFailure? Error { get; init; }

    /// <summary>The output was taken over from the run this one retries; the step did not run again.</summary>
    public bool Reused { get; init; }

    public IReadOnlyList<StepAttempt> Attempts { get; init; } = [];
}

/// <summary>
/// One try of a step by one worker. <see cref="Details"/> are executor facts, e.g. a container
/// step's <c>image_digest</c> and <c>exit_code</c>.
/// </summary>
public sealed record StepAttempt(
    int Number, string Worker, StepState State, DateTimeOffset StartedAt, DateTimeOffset? FinishedAt, StepFailure? Error, JsonObject? Details);

/// <summary>
/// Why a step or attempt failed. The stack trace is kept in the run store, not returned: it shows a
/// worker's internals.
/// </summary>
public sealed record StepFailure(string? Kind, string? Type, string? Message);

/// <summary>A page of runs, newest first. Pass <see cref="NextCursor"/> as <c>cursor</c> for the next page; it is null on the last page.</summary>
public sealed record RunList(IReadOnlyList<RunSummary> Items, string? NextCursor);

/// <summary>Filters and paging of <c>GET /api/v1/runs</c>.</summary>
public sealed record RunQuery
{
    public string? Pipeline { get; init; }
    public IReadOnlyList<RunState> States { get; init; } = [];
    public DateTimeOffset? From { get; init; }
    public DateTimeOffset? To { get; init; }
    public string? Schedule { get; init; }
    public int? Limit { get; init; }
    public string? Cursor { get; init; }
}

/// <summary>One line of a step attempt's log; <see cref="Id"/> increases along the log; <see cref="Stream"/> is <c>stdout</c>, <c>stderr</c> or <c>system</c>.</summary>
public sealed record LogLine(long Id, DateTimeOffset Timestamp, string Stream, string Text);

/// <summary>The last event of a followed log: the attempt finished in <paramref name="State"/>.</summary>
public sealed record LogEnd(StepState State);

/// <summary>Statistics of runs, per pipeline.</summary>
public sealed record RunStatistics(DateTimeOffset? From, DateTimeOffset? To, IReadOnlyList<PipelineRunStatistics> Pipelines);

/// <summary>
/// Runs of one pipeline: <see cref="Counts"/> in each state (every state listed), and
/// <see cref="Durations"/> over the latest 10,000 finished runs in the range (null when none finished).
/// </summary>
public sealed record PipelineRunStatistics(string Pipeline, int Total, IReadOnlyDictionary<RunState, int> Counts, RunDurations? Durations);

/// <summary>Run durations, start to finish, in milliseconds (nearest-rank percentiles).</summary>
public sealed record RunDurations(int Count, double MeanMs, double P50Ms, double P90Ms, double P99Ms, double MaxMs);
