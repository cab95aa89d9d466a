namespace Pipelines.Core.Runs;

/// <summary>What started a run.</summary>
public static class RunTriggers
{
    public const string Api = "api";
    public const string Cli = "cli";
    public const string Schedule = "schedule";
    public const string Retry = "retry";
    public const string Bus = "bus";

    /// <summary>
    /// Idempotency keys of scheduled runs start with this (<c>schedule:pipeline/name:fire-time</c>);
    /// <c>RunLauncher</c> refuses it from every other trigger, so that no one else can take or find a
    /// scheduled run's key.
    /// </summary>
    public const string ScheduleKeyPrefix = "schedule:";
}

/// <summary>One execution of a pipeline, as stored in the run store.</summary>
public sealed class RunRecord
{
    public Guid Id { get; set; }
    public string Pipeline { get; set; } = "";
    /// <summary>SHA-256 of the pipeline's definition when the run was accepted.</summary>
    public string DefinitionHash { get; set; } = "";
    /// <summary>The run's input payload (the <c>event</c> handlers receive), as JSON.</summary>
    public string Input { get; set; } = "{}";
    public RunState State { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    /// <summary>
    /// When the coordinator's sweep sends a still pending run its <c>StartRun</c> again: unset until
    /// the first resend, after which the wait doubles (see <see cref="Coordination.RunSweeper"/>).
    /// </summary>
    public DateTimeOffset? StartCheckAt { get; set; }
    public DateTimeOffset? StartedAt { get; set; }
    public DateTimeOffset? FinishedAt { get; set; }
    public string? IdempotencyKey { get; set; }
    public string Trigger { get; set; } = RunTriggers.Api;
    /// <summary><c>pipeline/schedule</c> when a schedule started the run.</summary>
    public string? Schedule { get; set; }
    public DateTimeOffset? FireTime { get; set; }
    /// <summary>The failed run this one retries.</summary>
    public Guid? RetryOf { get; set; }
    public string? FailedStep { get; set; }
    /// <summary>W3C trace parent of the run's trace, so that work resumed later joins the same trace.</summary>
    public string? TraceParent { get; set; }
    public string? Error { get; set; }
    /// <summary>When the run's compensations were last seen moving: their slip sent, or one of them running or ending.</summary>
    public DateTimeOffset? CompensationQuietSince { get; set; }
    /// <summary>
    /// When the coordinator's sweep looks at the run if it is still compensating, to find a
    /// compensation slip, or its end, that never arrived. The wait after
    /// <see cref="CompensationQuietSince"/> doubles on each resend.
    /// </summary>
    public DateTimeOffset? CompensationCheckAt { get; set; }
    /// <summary>Chains not yet completed; the run succeeds when it reaches zero.</summary>
    public int RemainingChains { get; set; }
    /// <summary>Bumped by every coordinator transaction: updating it first takes the run's row lock, so the coordinator's decisions about one run are serialized.</summary>
    public int Version { get; set; }
    public List<StepRecord> Steps { get; set; } = [];
}

/// <summary>One step of a run: its state, current attempt, output or error, and the lease of the worker running it.</summary>
public sealed class StepRecord
{
    public Guid RunId { get; set; }
    public string Name { get; set; } = "";
    public int Chain { get; set; }
    public int Position { get; set; }
    public StepState State { get; set; }
    public int Attempts { get; set; }
    public DateTimeOffset? StartedAt { get; set; }
    public DateTimeOffset? FinishedAt { get; set; }
    public string? Output { get; set; }
    /// <summary>What went wrong, in a word: see <see cref="StepError"/>.</summary>
    public string? ErrorKind { get; set; }
    /// <summary>The .NET type of the exception a handler threw, if one did.</summary>
    public string? ErrorType { get; set; }
    public string? ErrorMessage { get; set; }
    public string? ErrorStack { get; set; }
    /// <summary>The worker running the step, or its compensation, under a lease that expires unless renewed.</summary>
    public string? LeaseOwner { get; set; }
    public DateTimeOffset? LeaseExpiresAt { get; set; }
    /// <summary>
    /// When the step's compensation ended: undone (the step is then compensated), failed (the error
    /// says so) or with nothing to undo. Unset while it is still to run.
    /// </summary>
    public DateTimeOffset? CompensationEndedAt { get; set; }
    /// <summary>The step outlived the delivery that started it; its worker reports completion by message.</summary>
    public bool Detached { get; set; }
    /// <summary>Output copied from the run this one retries; the step did not run again.</summary>
    public bool Reused { get; set; }
}

public sealed class ChainRecord
{
    public Guid RunId { get; set; }
    public int Index { get; set; }
    public int RemainingParents { get; set; }
    public ChainState State { get; set; }
    /// <summary>When the chain was last seen moving: its slip sent, or a step of it running or finishing.</summary>
    public DateTimeOffset? QuietSince { get; set; }
    /// <summary>
    /// When the coordinator's sweep looks at the chain if it is still dispatched, to find a slip or a
    /// slip's end that never arrived. The wait after <see cref="QuietSince"/> doubles on each resend.
    /// </summary>
    public DateTimeOffset? StallCheckAt { get; set; }
}

/// <summary>One try of a step by one worker; every re-execution is visible as a new attempt.</summary>
public sealed class StepAttemptRecord
{
    public long Id { get; set; }
    public Guid RunId { get; set; }
    public string Step { get; set; } = "";
    public int Number { get; set; }
    public string Worker { get; set; } = "";
    public DateTimeOffset StartedAt { get; set; }
    public DateTimeOffset? FinishedAt { get; set; }
    public StepState State { get; set; }
    /// <summary>What went wrong, in a word: see <see cref="StepError"/>.</summary>
    public string? ErrorKind { get; set; }
    /// <summary>The .NET type of the exception a handler threw, if one did.</summary>
    public string? ErrorType { get; set; }
    public string? ErrorMessage { get; set; }
    /// <summary>Executor facts as JSON, e.g. the image digest and container runtime of a container step.</summary>
    public string? Details { get; set; }
}

public sealed class StepLogRecord
{
    public long Id { get; set; }
    public Guid RunId { get; set; }
    public string Step { get; set; } = "";
    public int Attempt { get; set; }
    public DateTimeOffset Timestamp { get; set; }
    /// <summary><c>stdout</c>, <c>stderr</c> or <c>system</c>.</summary>
    public string Stream { get; set; } = "stdout";
    public string Text { get; set; } = "";
}
