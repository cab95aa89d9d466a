using System.Text.Json;
using System.Text.Json.Nodes;
using Pipelines.Client;
using Pipelines.Core.Runs;

namespace Pipelines.Api.Mapping;

/// <summary>Run-store records as the API shows them. A step's stack trace stays in the store.</summary>
internal static class RunMapping
{
    public static RunSummary ToSummary(this RunRecord run) => new()
    {
        Id = run.Id,
        Pipeline = run.Pipeline,
        State = run.State,
        Trigger = run.Trigger,
        Schedule = run.Schedule,
        FireTime = run.FireTime,
        IdempotencyKey = run.IdempotencyKey,
        RetryOf = run.RetryOf,
        CreatedAt = run.CreatedAt,
        StartedAt = run.StartedAt,
        FinishedAt = run.FinishedAt,
        FailedStep = run.FailedStep,
        Error = run.Error,
    };

    public static Run ToRun(this RunDetails details)
    {
        var run = details.Run;
        var attempts = details.Attempts.ToLookup(a => a.Step, StringComparer.Ordinal);
        return new Run(run.ToSummary())
        {
            Input = ParseJson(run.Input) as JsonObject ?? [],
            Steps = [.. run.Steps
                .OrderBy(s => s.Chain).ThenBy(s => s.Position)
                .Select(s => new RunStep
                {
                    Name = s.Name,
                    State = s.State,
                    Attempt = s.Attempts,
                    StartedAt = s.StartedAt,
                    FinishedAt = s.FinishedAt,
                    Output = s.Output is null ? null : ParseJson(s.Output),
                    Error = ErrorOf(s.ErrorKind, s.ErrorType, s.ErrorMessage),
                    Reused = s.Reused,
                    Attempts = [.. attempts[s.Name].Select(ToAttempt)],
                })],
        };
    }

    public static StepAttempt ToAttempt(this StepAttemptRecord attempt) => new(
        attempt.Number, attempt.Worker, attempt.State, attempt.StartedAt, attempt.FinishedAt,
        ErrorOf(attempt.ErrorKind, attempt.ErrorType, attempt.ErrorMessage),
        attempt.Details is null ? null : ParseJson(attempt.Details) as JsonObject);

    public static LogLine ToLine(this StepLogRecord line) => new(line.Id, line.Timestamp, line.Stream, line.Text);

    public static PipelineRunStatistics ToContract(this PipelineStatistics statistics) => new(
        statistics.Pipeline,
        statistics.Total,
        statistics.Counts,
        statistics.Durations is { } d
            ? new RunDurations(d.Count, d.Mean.TotalMilliseconds, d.P50.TotalMilliseconds, d.P90.TotalMilliseconds, d.P99.TotalMilliseconds, d.Max.TotalMilliseconds)
            : null);

    private static StepFailure? ErrorOf(string? kind, string? type, string? message) =>
        kind is null && message is null ? null : new StepFailure(kind, type, message);

    /// <summary>Stored JSON as a node; text that is not JSON (or nests absurdly deep) comes back as a string.</summary>
    private static JsonNode? ParseJson(string text)
    {
        try
        {
            return JsonNode.Parse(text, documentOptions: new JsonDocumentOptions { MaxDepth = 256 });
        }
        catch (JsonException)
        {
            return JsonValue.Create(text);
        }
    }
}
