using System.Globalization;
using System.Net.ServerSentEvents;
using System.Runtime.CompilerServices;
using System.Security.Claims;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.Options;
using Pipelines.Api.Http;
using Pipelines.Api.Mapping;
using Pipelines.Api.Security;
using Pipelines.Client;
using Pipelines.Core.Coordination;
using Pipelines.Core.Planning;
using Pipelines.Core.Runs;

namespace Pipelines.Api.Endpoints;

/// <summary><c>/api/v1/runs</c>: start, list, read, cancel and retry runs; step logs; statistics.</summary>
public static class RunEndpoints
{
    private const int LogBatch = 1000;

    public static RouteGroupBuilder MapRunEndpoints(this IEndpointRouteBuilder routes)
    {
        var group = routes.MapGroup("/runs").WithTags("Runs");
        group.MapPost("/", StartAsync).Describe(ApiScopes.RunsWrite, "StartRun",
            "Start a run. With an Idempotency-Key seen before, answers 200 with the run that key started instead of starting another.", 400, 413, 422, 503);
        group.MapGet("/", ListAsync).Describe(ApiScopes.RunsRead, "ListRuns",
            "List runs, newest first, filtered by pipeline, state (repeatable), creation time [from, to) and schedule; page with cursor.", 400);
        group.MapGet("/statistics", StatisticsAsync).Describe(ApiScopes.RunsRead, "GetRunStatistics",
            "Per pipeline: runs in each state and duration percentiles, for runs created in [from, to).", 400);
        group.MapGet("/{runId:guid}", GetAsync).Describe(ApiScopes.RunsRead, "GetRun",
            "One run with every step's state, attempts, timings, output and error.", 404);
        group.MapPost("/{runId:guid}/cancel", CancelAsync).Describe(ApiScopes.RunsWrite, "CancelRun",
            "Cancel a pending or running run: pending steps never start, running ones are stopped.", 404, 409, 503);
        group.MapPost("/{runId:guid}/retry", RetryAsync).Describe(ApiScopes.RunsWrite, "RetryRun",
            "Start a new run that retries a failed or cancelled one from its failed step; succeeded steps keep their outputs. A payload replaces the original. With an Idempotency-Key seen before, answers 200 with the run that key started instead of starting another.", 400, 404, 409, 422, 503);
        group.MapGet("/{runId:guid}/steps/{step}/attempts/{attempt:int}/log", LogAsync).Describe(ApiScopes.RunsRead, "GetStepLog",
                "A step attempt's log as plain text; with follow=true, server-sent events (log, ping, end) until the attempt finishes.", 404)
            .Produces<string>(StatusCodes.Status200OK, "text/plain")
            .Produces<LogLine>(StatusCodes.Status200OK, "text/event-stream");
        return group;
    }

    private static async Task<Results<Created<RunStarted>, Ok<RunStarted>>> StartAsync(
        StartRunRequest request,
        [FromHeader(Name = "Idempotency-Key")] string? idempotencyKey,
        PipelineCatalog catalog, RunLauncher launcher, RunQueries queries, BrokerGate broker,
        ClaimsPrincipal user, ILoggerFactory logs, CancellationToken cancellationToken)
    {
        if (string.IsNullOrWhiteSpace(request.Pipeline))
        {
            throw ApiProblems.Invalid("pipeline", "is required");
        }
        RequireValidKey(idempotencyKey);
        try
        {
            catalog.Get(request.Pipeline);
        }
        catch (UnknownPipelineException unknown)
        {
            throw ApiProblems.Unprocessable("Unknown pipeline", [new ApiError("pipeline", unknown.Message)]);
        }
        var launched = await broker.SendAsync(token => launcher.StartAsync(new RunRequest
        {
            Pipeline = request.Pipeline,
            Payload = request.Payload,
            IdempotencyKey = idempotencyKey,
            Trigger = RunTriggers.Api,
        }, token), cancellationToken);
        var started = new RunStarted(launched.RunId, request.Pipeline, launched.State, launched.Created);
        if (!launched.Created)
        {
            var existing = await queries.FindAsync(launched.RunId, cancellationToken);
            if (existing is not null && (existing.Pipeline != request.Pipeline || existing.RetryOf is not null))
            {
                throw KeyReused(existing);
            }
            return TypedResults.Ok(started with { State = existing?.State ?? launched.State });
        }
        logs.CreateLogger(typeof(RunEndpoints)).RunStarted(launched.RunId, request.Pipeline, user.Identity?.Name ?? "");
        return TypedResults.Created(RunPath(launched.RunId), started);
    }

    private static async Task<Ok<RunList>> ListAsync(
        string? pipeline, [FromQuery(Name = "state")] string[]? state, DateTimeOffset? from, DateTimeOffset? to, string? schedule,
        int? limit, string? cursor, RunQueries queries, IOptions<ApiOptions> options, CancellationToken cancellationToken)
    {
        var size = limit ?? options.Value.DefaultPageSize;
        if (size < 1 || size > options.Value.MaxPageSize)
        {
            throw ApiProblems.Invalid("limit", $"must be between 1 and {options.Value.MaxPageSize}");
        }
        RequireRange(from, to);
        var filter = new RunFilter
        {
            Pipeline = pipeline,
            States = ParseStates(state),
            From = from,
            To = to,
            Schedule = schedule,
        };
        var page = await queries.ListAsync(filter, size, string.IsNullOrEmpty(cursor) ? null : cursor, cancellationToken);
        return TypedResults.Ok(new RunList([.. page.Runs.Select(r => r.ToSummary())], page.NextCursor));
    }

    private static async Task<Ok<RunStatistics>> StatisticsAsync(
        string? pipeline, DateTimeOffset? from, DateTimeOffset? to, RunQueries queries, CancellationToken cancellationToken)
    {
        RequireRange(from, to);
        var statistics = await queries.StatisticsAsync(pipeline, from, to, cancellationToken);
        return TypedResults.Ok(new RunStatistics(from, to, [.. statistics.Select(s => s.ToContract())]));
    }

    private static async Task<Ok<Run>> GetAsync(Guid runId, RunQueries queries, CancellationToken cancellationToken) =>
        TypedResults.Ok((await queries.GetAsync(runId, cancellationToken) ?? throw NoSuchRun(runId)).ToRun());

    private static async Task<Accepted<RunSummary>> CancelAsync(
        Guid runId, RunQueries queries, RunLauncher launcher, BrokerGate broker, CancellationToken cancellationToken)
    {
        var run = await queries.FindAsync(runId, cancellationToken) ?? throw NoSuchRun(runId);
        if (!StateRules.CanMove(run.State, RunState.Cancelled))
        {
            throw ApiProblems.Conflict("state", $"run {runId} is {Name(run.State)}; only a pending or running run can be cancelled");
        }
        await broker.SendAsync(token => launcher.CancelAsync(runId, token), cancellationToken);
        return TypedResults.Accepted(RunPath(runId), run.ToSummary());
    }

    private static async Task<Results<Created<RunStarted>, Ok<RunStarted>>> RetryAsync(
        Guid runId, RetryRunRequest? request, [FromHeader(Name = "Idempotency-Key")] string? idempotencyKey,
        RunQueries queries, RunLauncher launcher, BrokerGate broker, CancellationToken cancellationToken)
    {
        RequireValidKey(idempotencyKey);
        var original = await queries.FindAsync(runId, cancellationToken) ?? throw NoSuchRun(runId);
        var launched = await broker.SendAsync(token => launcher.RetryAsync(runId, request?.Payload, idempotencyKey, token), cancellationToken);
        var started = new RunStarted(launched.RunId, original.Pipeline, launched.State, launched.Created);
        if (!launched.Created)
        {
            var existing = await queries.FindAsync(launched.RunId, cancellationToken);
            if (existing is not null && existing.RetryOf != runId)
            {
                throw KeyReused(existing);
            }
            return TypedResults.Ok(started with { State = existing?.State ?? launched.State });
        }
        return TypedResults.Created(RunPath(launched.RunId), started);
    }

    private static async Task<IResult> LogAsync(
        Guid runId, string step, int attempt, bool? follow, long? after, bool? timestamps,
        [FromHeader(Name = "Last-Event-ID")] string? lastEventId,
        RunQueries queries, IOptions<ApiOptions> options, TimeProvider clock, CancellationToken cancellationToken)
    {
        if (await queries.GetAttemptAsync(runId, step, attempt, cancellationToken) is null)
        {
            throw ApiProblems.NotFound("attempt", $"run {runId} has no attempt {attempt} of step '{step}'");
        }
        var from = long.TryParse(lastEventId, NumberStyles.None, CultureInfo.InvariantCulture, out var resumed) ? resumed : after ?? 0;
        if (follow == true)
        {
            return TypedResults.ServerSentEvents(FollowAsync(queries, runId, step, attempt, from, options.Value.LogPollInterval, clock, cancellationToken));
        }
        return TypedResults.Stream(async body =>
        {
            await using var writer = new StreamWriter(body, leaveOpen: true);
            for (var last = from; ;)
            {
                var lines = await queries.LogAsync(runId, step, attempt, last, LogBatch, cancellationToken);
                foreach (var line in lines)
                {
                    await writer.WriteLineAsync(timestamps == true
                        ? string.Create(CultureInfo.InvariantCulture, $"{line.Timestamp.UtcDateTime:O} {line.Stream} {line.Text}")
                        : line.Text);
                    last = line.Id;
                }
                if (lines.Count < LogBatch)
                {
                    return;
                }
            }
        }, "text/plain; charset=utf-8");
    }

    /// <summary>
    /// The attempt's lines as they arrive, then <c>end</c> with its outcome. The attempt's state is
    /// read before its lines, so the lines written before it finished are all sent before <c>end</c>
    /// (a worker flushes a step's log before it records the outcome). Each line's id is the event id,
    /// so a client resumes with <c>Last-Event-ID</c>. A <c>ping</c> every 15 s of silence keeps proxies from closing the stream.
    /// </summary>
    private static async IAsyncEnumerable<SseItem<object>> FollowAsync(
        RunQueries queries, Guid runId, string step, int attempt, long after, TimeSpan poll, TimeProvider clock,
        [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var lastSent = clock.GetTimestamp();
        while (true)
        {
            var state = (await queries.GetAttemptAsync(runId, step, attempt, cancellationToken))?.State ?? StepState.Cancelled;
            List<StepLogRecord> lines;
            do
            {
                lines = await queries.LogAsync(runId, step, attempt, after, LogBatch, cancellationToken);
                foreach (var line in lines)
                {
                    after = line.Id;
                    lastSent = clock.GetTimestamp();
                    yield return new SseItem<object>(line.ToLine(), "log") { EventId = line.Id.ToString(CultureInfo.InvariantCulture) };
                }
            }
            while (lines.Count == LogBatch);
            if (state != StepState.Running)
            {
                yield return new SseItem<object>(new LogEnd(state), "end");
                yield break;
            }
            if (clock.GetElapsedTime(lastSent) >= TimeSpan.FromSeconds(15))
            {
                lastSent = clock.GetTimestamp();
                yield return new SseItem<object>(new { }, "ping");
            }
            await Task.Delay(poll, clock, cancellationToken);
        }
    }

    private static string RunPath(Guid runId) => $"/api/v1/runs/{runId}";

    private static void RequireValidKey(string? idempotencyKey)
    {
        if (idempotencyKey is not null && (idempotencyKey.Length is 0 or > 200 || idempotencyKey.Any(c => c is < ' ' or > '~')))
        {
            throw ApiProblems.Invalid("Idempotency-Key", "must be 1 to 200 printable ASCII characters");
        }
        RunLauncher.RequireOwnKey(idempotencyKey);
    }

    /// <summary>A key seen before, whose run is not one this request would have started.</summary>
    private static ApiProblemException KeyReused(RunRecord existing) =>
        ApiProblems.Unprocessable("Idempotency-Key reused",
        [
            new ApiError("Idempotency-Key", existing.RetryOf is { } retried
                ? $"already started a retry of run {retried}; use a new key for another request"
                : $"already started a run of pipeline '{existing.Pipeline}'; use a new key for another request"),
        ]);

    private static ApiProblemException NoSuchRun(Guid runId) => ApiProblems.NotFound("run_id", $"run {runId} does not exist");

    private static string Name(RunState state) => state.ToString().ToLowerInvariant();

    private static void RequireRange(DateTimeOffset? from, DateTimeOffset? to)
    {
        if (from is { } start && to is { } end && end <= start)
        {
            throw ApiProblems.Invalid("to", "must be after from");
        }
    }

    private static List<RunState> ParseStates(string[]? values)
    {
        var states = new List<RunState>();
        foreach (var text in (values ?? []).SelectMany(v => v.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)))
        {
            if (!Enum.TryParse<RunState>(text, ignoreCase: true, out var state) || char.IsAsciiDigit(text[0]))
            {
                throw ApiProblems.Invalid("state", $"'{text}' is not a run state: use {string.Join(", ", Enum.GetNames<RunState>().Select(n => n.ToLowerInvariant()))}");
            }
            states.Add(state);
        }
        return states;
    }
}
