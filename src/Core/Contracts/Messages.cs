namespace Pipelines.Core.Contracts;

/// <summary>
/// Start a run of a pipeline. Sent to the coordinator by <c>RunLauncher</c> after it stored the
/// run, or published directly by code inside a worker or service; either way the run is created
/// once: <see cref="RunId"/> and <see cref="IdempotencyKey"/> are both unique in the run store.
/// </summary>
public sealed record StartRun
{
    public Guid RunId { get; init; }
    public string Pipeline { get; init; } = "";
    /// <summary>The run's input payload as JSON text; null for an empty object.</summary>
    public string? Payload { get; init; }
    public string? IdempotencyKey { get; init; }
    public string Trigger { get; init; } = Runs.RunTriggers.Bus;
}

/// <summary>
/// Start runs already stored, together: <c>RunLauncher</c> sends the runs it stored in one transaction
/// (a schedule's burst of fires) in a few of these rather than one <see cref="StartRun"/> each. Every
/// message costs the sender, the broker and the coordinator about the same whatever it carries: one
/// each, a burst of 167 reached the coordinator's queue 70-120 ms after its time, against 40-60 ms in
/// seven of these (RabbitMQ, 2 cores, bench/README.md).
/// </summary>
public sealed record StartRuns
{
    public IReadOnlyList<StoredRun> Runs { get; init; } = [];
}

/// <summary>A stored run to start, with the trace it belongs to, so that the coordinator's work joins it.</summary>
public sealed record StoredRun(Guid RunId, string Pipeline, string? TraceParent);

/// <summary>Cancel a run: pending steps never start, running handlers see their token cancelled.</summary>
public sealed record CancelRun(Guid RunId);

/// <summary>Published to every worker when a run is cancelled, so running steps stop now rather than at their next heartbeat.</summary>
public sealed record RunCancellationRequested(Guid RunId);

/// <summary>
/// A detached step (one that outlived the delivery which started it) finished. The coordinator
/// continues its chain from the next step.
/// </summary>
public sealed record DetachedStepFinished(Guid RunId, string Step);

/// <summary>Published when a run reaches a terminal state.</summary>
public sealed record RunFinished(Guid RunId, string Pipeline, Runs.RunState State, string? FailedStep);

/// <summary>The arguments of every step activity: a reference, never the definition or a secret.</summary>
public sealed record StepArguments
{
    public Guid RunId { get; init; }
    public string Pipeline { get; init; } = "";
    public string Step { get; init; } = "";
}
