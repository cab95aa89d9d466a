using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using MassTransit;
using Microsoft.EntityFrameworkCore;
using Pipelines.Core.Contracts;
using Pipelines.Core.Definitions;
using Pipelines.Core.Persistence;
using Pipelines.Core.Planning;
using Pipelines.Core.Runs;
using Pipelines.Core.Telemetry;

namespace Pipelines.Core.Coordination;

/// <summary>A request to run a pipeline, from the API, the CLI, a schedule or a retry.</summary>
public sealed record RunRequest
{
    public required string Pipeline { get; init; }
    public JsonObject? Payload { get; init; }
    /// <summary>A key seen before returns the run it started instead of a second run.</summary>
    public string? IdempotencyKey { get; init; }
    public string Trigger { get; init; } = RunTriggers.Api;
    /// <summary><c>pipeline/schedule</c> when a schedule fired.</summary>
    public string? Schedule { get; init; }
    public DateTimeOffset? FireTime { get; init; }
}

/// <summary>The run a request resolved to; <see cref="Created"/> is false when the idempotency key was seen before.</summary>
public sealed record LaunchedRun(Guid RunId, bool Created, RunState State);

/// <summary>An idempotency key in the scheduler's form (<see cref="RunTriggers.ScheduleKeyPrefix"/>) from anyone but the scheduler.</summary>
public sealed class ReservedIdempotencyKeyException()
    : Exception($"keys starting with '{RunTriggers.ScheduleKeyPrefix}' belong to the scheduler's runs; choose another");

/// <summary>The payload does not fit the pipeline's parameters; each problem names the field.</summary>
public sealed class InvalidRunInputException(IReadOnlyList<(string? Field, string Message)> problems)
    : Exception(string.Join("; ", problems.Select(p => p.Message)))
{
    public IReadOnlyList<(string? Field, string Message)> Problems { get; } = problems;
}

/// <summary>
/// Accepts runs. The run and its step rows are stored first (one transaction, idempotent on the
/// run id and the idempotency key), then <see cref="StartRun"/> goes to the coordinator. If the
/// broker is down the caller gets the exception (the API answers 503), and the stored run is
/// started later by the coordinator's sweep of pending runs: an accepted run is never lost.
/// </summary>
public sealed class RunLauncher(RunStore store, PipelineCatalog catalog, ISendEndpointProvider sendEndpoints, PipelinesEnvironment environment)
{
    /// <summary>
    /// Runs per <see cref="StartRuns"/> at most: a burst still reaches several coordinator replicas (a
    /// replica starts a message's runs one after another), in a few messages rather than one a run.
    /// </summary>
    public const int RunsPerStartMessage = 25;

    private readonly NewRunWriter _newRuns = new(store, (runs, cancellationToken) => SendStartsAsync(sendEndpoints, runs, cancellationToken));

    public async Task<LaunchedRun> StartAsync(RunRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        var runId = NewRunId(request.IdempotencyKey);
        using var trace = PipelinesTelemetry.StartRunActivity($"run {request.Pipeline}", runId, request.Pipeline);
        return await _newRuns.StoreAsync(Prepare(runId, request, trace?.Id), start: true, cancellationToken);
    }

    /// <summary>Checks the request and stores it as run <paramref name="runId"/>, without starting it.</summary>
    internal Task<LaunchedRun> StoreAsync(Guid runId, RunRequest request, string? traceParent, CancellationToken cancellationToken) =>
        _newRuns.StoreAsync(Prepare(runId, request, traceParent), start: false, cancellationToken);

    /// <summary>Checks the request and plans its run, steps and chains, stamped as accepted now.</summary>
    private NewRun Prepare(Guid runId, RunRequest request, string? traceParent)
    {
        if (request.Trigger != RunTriggers.Schedule)
        {
            RequireOwnKey(request.IdempotencyKey);
        }
        var pipeline = catalog.Get(request.Pipeline);
        var run = new RunRecord
        {
            Id = runId,
            TraceParent = traceParent,
            Pipeline = pipeline.Definition.Name,
            DefinitionHash = pipeline.Hash,
            Input = InputOf(pipeline.Definition, request.Payload).ToJsonString(),
            State = RunState.Pending,
            CreatedAt = store.Now,
            IdempotencyKey = request.IdempotencyKey,
            Trigger = request.Trigger,
            Schedule = request.Schedule,
            FireTime = request.FireTime,
        };
        return Plan(pipeline, run, reusedOutputs: null);
    }

    /// <summary>
    /// Starts a new run that retries a failed or cancelled one from its failed step: steps that
    /// succeeded (and were not compensated) keep their outputs and do not run again. The new run
    /// links to the original. <paramref name="payload"/> overrides the original input when given.
    /// </summary>
    /// <remarks>
    /// With an <paramref name="idempotencyKey"/> seen before, nothing new starts: the result is the
    /// run that key started, with <see cref="LaunchedRun.Created"/> false.
    /// </remarks>
    public async Task<LaunchedRun> RetryAsync(Guid runId, JsonObject? payload, string? idempotencyKey, CancellationToken cancellationToken)
    {
        RequireOwnKey(idempotencyKey);
        var original = await store.ReadAsync(c => c.Runs.Include(r => r.Steps).SingleOrDefaultAsync(r => r.Id == runId, cancellationToken))
            ?? throw new RunNotFoundException(runId);
        if (original.State is not (RunState.Failed or RunState.Cancelled))
        {
            throw new InvalidRunStateException(runId, original.State, "only a failed or cancelled run can be retried");
        }
        var pipeline = catalog.Get(original.Pipeline);
        var input = payload is null ? original.Input : InputOf(pipeline.Definition, payload).ToJsonString();
        var reused = original.Steps
            .Where(s => s.State == StepState.Succeeded && pipeline.Definition.FindStep(s.Name) is not null)
            .ToDictionary(s => s.Name, s => s.Output, StringComparer.Ordinal);
        var retryId = NewRunId(idempotencyKey);
        using var trace = PipelinesTelemetry.StartRunActivity($"run {original.Pipeline}", retryId, original.Pipeline);
        trace?.SetTag("pipelines.retry_of", original.Id.ToString());
        var run = new RunRecord
        {
            Id = retryId,
            TraceParent = trace?.Id,
            Pipeline = original.Pipeline,
            DefinitionHash = pipeline.Hash,
            Input = input,
            State = RunState.Pending,
            CreatedAt = store.Now,
            IdempotencyKey = idempotencyKey,
            Trigger = RunTriggers.Retry,
            RetryOf = original.Id,
            Schedule = original.Schedule,
        };
        return await _newRuns.StoreAsync(Plan(pipeline, run, reused), start: true, cancellationToken);
    }

    /// <summary>
    /// The id of the run that <paramref name="idempotencyKey"/> starts: a name-based UUID (version 8)
    /// of the key, so every path that starts a run with one key — the API, a retry, a schedule's fire,
    /// a <see cref="StartRun"/> published on the bus — names the same run, and two of them racing store
    /// one run (the second meets its id in the store). Keys are unique across pipelines in the run
    /// store, so the key alone decides the id.
    /// </summary>
    public static Guid RunIdFor(string idempotencyKey)
    {
        ArgumentNullException.ThrowIfNull(idempotencyKey);
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(Encoding.UTF8.GetBytes("pipelines-run:" + idempotencyKey), hash);
        var bytes = hash[..16];
        bytes[6] = (byte)((bytes[6] & 0x0F) | 0x80);
        bytes[8] = (byte)((bytes[8] & 0x3F) | 0x80);
        return new Guid(bytes, bigEndian: true);
    }

    /// <summary>Throws <see cref="ReservedIdempotencyKeyException"/> for a key in the scheduler's form; for every start but a schedule's fire.</summary>
    public static void RequireOwnKey(string? idempotencyKey)
    {
        if (idempotencyKey?.StartsWith(RunTriggers.ScheduleKeyPrefix, StringComparison.Ordinal) == true)
        {
            throw new ReservedIdempotencyKeyException();
        }
    }

    private static Guid NewRunId(string? idempotencyKey) => idempotencyKey is null ? NewId.NextGuid() : RunIdFor(idempotencyKey);

    /// <summary>Asks the coordinator to cancel a run: pending steps never start, running handlers see their token cancelled.</summary>
    public async Task CancelAsync(Guid runId, CancellationToken cancellationToken)
    {
        var coordinator = await sendEndpoints.GetSendEndpoint(StepQueues.Address(StepQueues.Coordinator));
        await coordinator.Send(new CancelRun(runId), cancellationToken);
    }

    /// <summary>The run's event: the payload with parameter defaults filled in, after checking it against the parameters.</summary>
    public static JsonObject InputOf(PipelineDefinition pipeline, JsonObject? payload)
    {
        ArgumentNullException.ThrowIfNull(pipeline);
        var problems = PipelineValidator.PayloadProblems(pipeline, payload).ToList();
        if (problems.Count > 0)
        {
            throw new InvalidRunInputException(problems);
        }
        var input = payload?.DeepClone().AsObject() ?? [];
        foreach (var parameter in pipeline.Parameters.Values)
        {
            if (!input.ContainsKey(parameter.Name) && parameter.Default is not null)
            {
                input[parameter.Name] = parameter.Default.DeepClone();
            }
        }
        return input;
    }

    /// <summary>
    /// Sends a stored run's start in a span <paramref name="operation"/> of the run's trace
    /// (<paramref name="traceParent"/>), so that the coordinator goes on with that trace whoever sends it.
    /// </summary>
    internal static async Task SendStartAsync(
        ISendEndpointProvider sendEndpoints, string operation, Guid runId, string pipeline, string? traceParent, CancellationToken cancellationToken)
    {
        using var trace = PipelinesTelemetry.StartRunActivity(operation, runId, pipeline, traceParent);
        var coordinator = await sendEndpoints.GetSendEndpoint(StepQueues.Address(StepQueues.Coordinator));
        await coordinator.Send(new StartRun { RunId = runId }, cancellationToken);
    }

    /// <summary>Sends the starts of runs stored together: a lone run's as a <see cref="StartRun"/>, more in <see cref="StartRuns"/>.</summary>
    private static async Task SendStartsAsync(ISendEndpointProvider sendEndpoints, IReadOnlyList<RunRecord> runs, CancellationToken cancellationToken)
    {
        if (runs is [var run])
        {
            await SendStartAsync(sendEndpoints, "send StartRun", run.Id, run.Pipeline, run.TraceParent, cancellationToken);
            return;
        }
        var coordinator = await sendEndpoints.GetSendEndpoint(StepQueues.Address(StepQueues.Coordinator));
        await Task.WhenAll(runs.Chunk(RunsPerStartMessage).Select(chunk => coordinator.Send(
            new StartRuns { Runs = [.. chunk.Select(r => new StoredRun(r.Id, r.Pipeline, r.TraceParent))] }, cancellationToken)));
    }

    private NewRun Plan(CatalogEntry pipeline, RunRecord run, IReadOnlyDictionary<string, string?>? reusedOutputs)
    {
        var (steps, chains) = RunPlanner.Plan(pipeline, run.Id, environment.Name, reusedOutputs);
        run.RemainingChains = chains.Count;
        return new NewRun(run, steps, chains);
    }
}

public sealed class RunNotFoundException(Guid runId) : Exception($"run {runId} does not exist")
{
    public Guid RunId { get; } = runId;
}

public sealed class InvalidRunStateException(Guid runId, RunState state, string rule)
    : Exception($"run {runId} is {state.ToString().ToLowerInvariant()}: {rule}")
{
    public RunState State { get; } = state;
}

/// <summary>The deployment environment (<c>PIPELINES_ENV</c>), which <c>skip_in_env</c> refers to.</summary>
public sealed record PipelinesEnvironment(string? Name)
{
    public static PipelinesEnvironment FromProcess() =>
        new(Environment.GetEnvironmentVariable("PIPELINES_ENV") is { Length: > 0 } name ? name : null);
}
