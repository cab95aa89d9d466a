using Microsoft.EntityFrameworkCore;
using Pipelines.Core.Execution;
using Pipelines.Core.Persistence;

namespace Pipelines.Core.Runs;

/// <summary>The outcome of a worker's attempt to take a step.</summary>
public abstract record StepClaim
{
    /// <summary>This worker owns the step now, as attempt <paramref name="Attempt"/>.</summary>
    public sealed record Claimed(int Attempt, string Input) : StepClaim;

    /// <summary>The step ran before (a redelivered message): reuse its output.</summary>
    public sealed record AlreadyDone(string? Output) : StepClaim;

    /// <summary>Another live worker holds the step's lease.</summary>
    public sealed record HeldElsewhere(DateTimeOffset LeaseExpiresAt) : StepClaim;

    /// <summary>The run no longer accepts work, or the step was cancelled or failed.</summary>
    public sealed record Inactive(string Reason) : StepClaim;
}

/// <summary>The outcome of a worker's attempt to take a step's compensation.</summary>
public enum CompensationClaim
{
    /// <summary>This worker holds the compensation's lease now.</summary>
    Claimed,

    /// <summary>The compensation already ended (or the step was never completed): nothing to do.</summary>
    Ended,

    /// <summary>Another copy of the compensation slip is running it under a live lease.</summary>
    HeldElsewhere,
}

/// <summary>
/// An error as stored with a step attempt. <paramref name="Kind"/> says what went wrong in a word
/// (<c>timeout</c>, <c>exit-code</c>, <c>oom</c>, <c>policy</c>, <c>worker-lost</c>, <c>handed-back</c>,
/// <c>exception</c>, ...); <paramref name="Type"/> is the .NET type of an exception a handler threw.
/// </summary>
public sealed record StepError(string Kind, string? Type, string Message, string? StackTrace)
{
    /// <summary>An error the framework itself describes (no exception behind it).</summary>
    public StepError(string kind, string message) : this(kind, null, message, null)
    {
    }

    public static StepError From(Exception exception)
    {
        ArgumentNullException.ThrowIfNull(exception);
        return exception is StepFailedException failed
            ? new(failed.Kind, null, failed.Message, failed.StackTrace)
            : new("exception", exception.GetType().FullName ?? exception.GetType().Name, exception.Message, exception.StackTrace);
    }

    /// <summary>This error with the secrets its step resolved masked, as it may be stored and shown.</summary>
    public StepError MaskedWith(RevealedSecrets secrets) =>
        this with { Message = secrets.Mask(Message), StackTrace = StackTrace is null ? null : secrets.Mask(StackTrace) };
}

/// <summary>
/// A worker's side of the run store: claiming a step under a lease, renewing it while the step
/// runs, and recording attempts, outputs and errors. Every write is conditional on this worker
/// still owning the step, so a worker that lost its lease (it stalled, another took over) cannot
/// overwrite the new owner's result.
/// </summary>
public sealed class StepLeases(RunStore store, GroupCommitWriter writer, string workerId, TimeSpan leaseDuration)
{
    public string WorkerId => workerId;

    public TimeSpan LeaseDuration => leaseDuration;

    public async Task<StepClaim> ClaimAsync(Guid runId, string step, CancellationToken cancellationToken)
    {
        for (var race = 0; ; race++)
        {
            var claim = await writer.WriteAsync(context => TryClaimAsync(context, runId, step, cancellationToken), cancellationToken);
            if (claim is not null)
            {
                return claim;
            }
            if (race == 3)
            {
                return new StepClaim.HeldElsewhere(store.Now + leaseDuration);
            }
        }
    }

    private async Task<StepClaim?> TryClaimAsync(RunStoreContext context, Guid runId, string step, CancellationToken cancellationToken)
    {
        var now = store.Now;
        var current = await context.Steps.AsNoTracking().Where(s => s.RunId == runId && s.Name == step)
            .Select(s => new { s.State, s.Attempts, s.LeaseOwner, s.LeaseExpiresAt, s.Output })
            .SingleOrDefaultAsync(cancellationToken);
        var run = await context.Runs.AsNoTracking().Where(r => r.Id == runId)
            .Select(r => new { r.State, r.Input }).SingleOrDefaultAsync(cancellationToken);
        if (current is null || run is null)
        {
            return new StepClaim.Inactive("the run or step is not in the run store");
        }
        if (current.State is StepState.Succeeded or StepState.Skipped or StepState.Compensated)
        {
            return new StepClaim.AlreadyDone(current.Output);
        }
        if (current.State is StepState.Failed or StepState.Cancelled)
        {
            return new StepClaim.Inactive($"the step is {current.State.ToString().ToLowerInvariant()}");
        }
        // A live lease is respected even when it is this worker's own: a second delivery of a step
        // this process is running (a duplicated slip) must wait for it, not run it again.
        var leaseLive = current.State == StepState.Running && current.LeaseExpiresAt > now;
        if (!run.State.AcceptsWork())
        {
            if (current.State == StepState.Running && !leaseLive)
            {
                // Its worker is gone and the run has moved on: close the step so the run can settle.
                await FinishStepAsync(context, runId, step, current.Attempts, StepState.Cancelled, null, null, requireOwner: false, now, cancellationToken);
            }
            return new StepClaim.Inactive($"the run is {run.State.ToString().ToLowerInvariant()}");
        }
        if (leaseLive)
        {
            return new StepClaim.HeldElsewhere(current.LeaseExpiresAt!.Value);
        }

        var attempt = current.Attempts + 1;
        var expires = now + leaseDuration;
        var claimed = await context.Steps
            .Where(s => s.RunId == runId && s.Name == step && s.State == current.State && s.Attempts == current.Attempts)
            .ExecuteUpdateAsync(s => s
                .SetProperty(x => x.State, StepState.Running)
                .SetProperty(x => x.Attempts, attempt)
                .SetProperty(x => x.LeaseOwner, workerId)
                .SetProperty(x => x.LeaseExpiresAt, expires)
                .SetProperty(x => x.StartedAt, x => x.StartedAt ?? now)
                .SetProperty(x => x.Detached, false), cancellationToken);
        if (claimed == 0)
        {
            return null; // another worker moved the step between our read and our update: look again
        }
        if (current.State == StepState.Running)
        {
            await context.Attempts
                .Where(a => a.RunId == runId && a.Step == step && a.Number == current.Attempts && a.State == StepState.Running)
                .ExecuteUpdateAsync(a => a
                    .SetProperty(x => x.State, StepState.Failed)
                    .SetProperty(x => x.FinishedAt, now)
                    .SetProperty(x => x.ErrorKind, "worker-lost")
                    .SetProperty(x => x.ErrorMessage, $"worker '{current.LeaseOwner}' stopped renewing its lease; the step was taken over"), cancellationToken);
        }
        context.Attempts.Add(NewAttempt(runId, step, attempt, now));
        return new StepClaim.Claimed(attempt, run.Input);
    }

    /// <summary>Records the previous attempt's failure and starts the next one, if this worker still owns a step of a live run.</summary>
    public Task<bool> RetryAsync(Guid runId, string step, int failedAttempt, StepError error, CancellationToken cancellationToken) =>
        writer.WriteAsync(async context =>
        {
            var now = store.Now;
            await CloseAttemptAsync(context, runId, step, failedAttempt, StepState.Failed, error, null, now, cancellationToken);
            var next = failedAttempt + 1;
            var moved = await context.Steps
                .Where(s => s.RunId == runId && s.Name == step && s.State == StepState.Running && s.LeaseOwner == workerId && s.Attempts == failedAttempt)
                .Where(s => context.Runs.Any(r => r.Id == runId && (r.State == RunState.Running || r.State == RunState.Pending)))
                .ExecuteUpdateAsync(s => s
                    .SetProperty(x => x.Attempts, next)
                    .SetProperty(x => x.ErrorKind, error.Kind)
                    .SetProperty(x => x.ErrorType, error.Type)
                    .SetProperty(x => x.ErrorMessage, error.Message)
                    .SetProperty(x => x.LeaseExpiresAt, now + leaseDuration), cancellationToken);
            if (moved == 1)
            {
                context.Attempts.Add(NewAttempt(runId, step, next, now));
            }
            return moved == 1;
        }, cancellationToken);

    /// <summary>Extends the lease; returns the run's state, or null when this worker no longer owns the step.</summary>
    public Task<RunState?> RenewAsync(Guid runId, string step, int attempt, CancellationToken cancellationToken) =>
        writer.WriteAsync(async context =>
        {
            var expires = store.Now + leaseDuration;
            var renewed = await context.Steps
                .Where(s => s.RunId == runId && s.Name == step && s.State == StepState.Running && s.LeaseOwner == workerId && s.Attempts == attempt)
                .ExecuteUpdateAsync(s => s.SetProperty(x => x.LeaseExpiresAt, expires), cancellationToken);
            if (renewed == 0)
            {
                return (RunState?)null;
            }
            return await context.Runs.Where(r => r.Id == runId).Select(r => (RunState?)r.State).SingleAsync(cancellationToken);
        }, cancellationToken);

    /// <summary>Marks the step as continuing in the background; false when it already finished.</summary>
    public Task<bool> DetachAsync(Guid runId, string step, int attempt, CancellationToken cancellationToken) =>
        writer.WriteAsync(async context => await context.Steps
            .Where(s => s.RunId == runId && s.Name == step && s.State == StepState.Running && s.LeaseOwner == workerId && s.Attempts == attempt)
            .ExecuteUpdateAsync(s => s.SetProperty(x => x.Detached, true), cancellationToken) == 1, cancellationToken);

    /// <summary>
    /// Marks a step another worker is running as detached, after a duplicate delivery of it waited
    /// long enough: the owner then reports completion by message, and the coordinator's reaper
    /// recovers the step if the owner dies.
    /// </summary>
    public Task MarkDetachedAsync(Guid runId, string step, CancellationToken cancellationToken) =>
        writer.WriteAsync(context => context.Steps
            .Where(s => s.RunId == runId && s.Name == step && s.State == StepState.Running)
            .ExecuteUpdateAsync(s => s.SetProperty(x => x.Detached, true), cancellationToken), cancellationToken);

    /// <summary>
    /// Gives a step back (the worker is stopping): the attempt is closed as cancelled and the lease
    /// expires now, so the coordinator re-dispatches the step to another worker at once.
    /// </summary>
    public Task GiveBackAsync(Guid runId, string step, int attempt, CancellationToken cancellationToken) =>
        writer.WriteAsync(async context =>
        {
            var now = store.Now;
            await CloseAttemptAsync(context, runId, step, attempt, StepState.Cancelled,
                new StepError("handed-back", $"worker '{workerId}' stopped before the step finished; the step was handed back"), null, now, cancellationToken);
            await context.Steps
                .Where(s => s.RunId == runId && s.Name == step && s.State == StepState.Running && s.LeaseOwner == workerId && s.Attempts == attempt)
                .ExecuteUpdateAsync(s => s.SetProperty(x => x.Detached, true).SetProperty(x => x.LeaseExpiresAt, now.AddSeconds(-1)), cancellationToken);
        }, cancellationToken);

    /// <summary>Records the step's final outcome. Returns whether it was recorded (this worker still owned it) and whether the step had detached.</summary>
    public Task<(bool Recorded, bool Detached)> FinishAsync(
        Guid runId, string step, int attempt, StepState outcome, string? output, StepError? error,
        IReadOnlyDictionary<string, string>? details, CancellationToken cancellationToken) =>
        writer.WriteAsync(async context =>
        {
            var now = store.Now;
            await CloseAttemptAsync(context, runId, step, attempt, outcome, error, details, now, cancellationToken);
            var recorded = await FinishStepAsync(context, runId, step, attempt, outcome, output, error, requireOwner: true, now, cancellationToken);
            var detached = await context.Steps.Where(s => s.RunId == runId && s.Name == step).Select(s => s.Detached).SingleAsync(cancellationToken);
            return (recorded, detached);
        }, cancellationToken);

    /// <summary>
    /// Takes the lease on a completed step's compensation, so that two copies of a compensation slip
    /// (one resent by the coordinator's sweep while the first was only slow) never undo it at once.
    /// </summary>
    public Task<CompensationClaim> ClaimCompensationAsync(Guid runId, string step, CancellationToken cancellationToken) =>
        writer.WriteAsync(async context =>
        {
            var now = store.Now;
            var open = context.Steps.Where(s => s.RunId == runId && s.Name == step && s.State == StepState.Succeeded && s.CompensationEndedAt == null);
            var claimed = await open
                .Where(s => s.LeaseExpiresAt == null || s.LeaseExpiresAt < now)
                .ExecuteUpdateAsync(s => s
                    .SetProperty(x => x.LeaseOwner, workerId)
                    .SetProperty(x => x.LeaseExpiresAt, now + leaseDuration), cancellationToken);
            if (claimed == 1)
            {
                return CompensationClaim.Claimed;
            }
            return await open.AnyAsync(cancellationToken) ? CompensationClaim.HeldElsewhere : CompensationClaim.Ended;
        }, cancellationToken);

    /// <summary>Extends the lease on a compensation; false when this worker no longer holds it.</summary>
    public Task<bool> RenewCompensationAsync(Guid runId, string step, CancellationToken cancellationToken) =>
        writer.WriteAsync(async context => await OwnCompensation(context, runId, step)
            .ExecuteUpdateAsync(s => s.SetProperty(x => x.LeaseExpiresAt, store.Now + leaseDuration), cancellationToken) == 1, cancellationToken);

    /// <summary>Gives a compensation back unfinished (the worker is stopping): the next delivery of it may take it at once.</summary>
    public Task ReleaseCompensationAsync(Guid runId, string step, CancellationToken cancellationToken) =>
        writer.WriteAsync(context => OwnCompensation(context, runId, step)
            .ExecuteUpdateAsync(s => s
                .SetProperty(x => x.LeaseOwner, (string?)null)
                .SetProperty(x => x.LeaseExpiresAt, (DateTimeOffset?)null), cancellationToken), cancellationToken);

    /// <summary>
    /// Records how a compensation this worker holds ended: <paramref name="undone"/> marks the step
    /// compensated, <paramref name="error"/> says why it could not be; neither means there was
    /// nothing to undo. Returns false when this worker had lost the lease.
    /// </summary>
    public Task<bool> EndCompensationAsync(Guid runId, string step, bool undone, StepError? error, CancellationToken cancellationToken) =>
        writer.WriteAsync(async context =>
        {
            var ended = OwnCompensation(context, runId, step);
            var now = store.Now;
            if (error is not null)
            {
                return await ended.ExecuteUpdateAsync(s => s
                    .SetProperty(x => x.CompensationEndedAt, now)
                    .SetProperty(x => x.LeaseOwner, (string?)null)
                    .SetProperty(x => x.LeaseExpiresAt, (DateTimeOffset?)null)
                    .SetProperty(x => x.ErrorKind, error.Kind)
                    .SetProperty(x => x.ErrorType, error.Type)
                    .SetProperty(x => x.ErrorMessage, $"compensation failed: {error.Message}")
                    .SetProperty(x => x.ErrorStack, error.StackTrace), cancellationToken) == 1;
            }
            var state = undone ? StepState.Compensated : StepState.Succeeded;
            return await ended.ExecuteUpdateAsync(s => s
                .SetProperty(x => x.State, state)
                .SetProperty(x => x.CompensationEndedAt, now)
                .SetProperty(x => x.LeaseOwner, (string?)null)
                .SetProperty(x => x.LeaseExpiresAt, (DateTimeOffset?)null), cancellationToken) == 1;
        }, cancellationToken);

    private IQueryable<StepRecord> OwnCompensation(RunStoreContext context, Guid runId, string step) =>
        context.Steps.Where(s => s.RunId == runId && s.Name == step && s.State == StepState.Succeeded
            && s.CompensationEndedAt == null && s.LeaseOwner == workerId);

    public Task<Dictionary<string, string?>> OutputsAsync(Guid runId, IReadOnlyCollection<string> steps) =>
        store.ReadAsync(context => context.Steps
            .Where(s => s.RunId == runId && steps.Contains(s.Name))
            .ToDictionaryAsync(s => s.Name, s => s.Output, StringComparer.Ordinal));

    private StepAttemptRecord NewAttempt(Guid runId, string step, int number, DateTimeOffset now) =>
        new() { RunId = runId, Step = step, Number = number, Worker = workerId, StartedAt = now, State = StepState.Running };

    private async Task<bool> FinishStepAsync(
        RunStoreContext context, Guid runId, string step, int attempt, StepState outcome, string? output, StepError? error,
        bool requireOwner, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var sources = StateRules.SourcesOf(outcome);
        return await context.Steps
            .Where(s => s.RunId == runId && s.Name == step && sources.Contains(s.State) && s.Attempts == attempt)
            .Where(s => !requireOwner || s.LeaseOwner == workerId)
            .ExecuteUpdateAsync(s => s
                .SetProperty(x => x.State, outcome)
                .SetProperty(x => x.Output, output)
                .SetProperty(x => x.FinishedAt, now)
                .SetProperty(x => x.ErrorKind, error == null ? null : error.Kind)
                .SetProperty(x => x.ErrorType, error == null ? null : error.Type)
                .SetProperty(x => x.ErrorMessage, error == null ? null : error.Message)
                .SetProperty(x => x.ErrorStack, error == null ? null : error.StackTrace)
                .SetProperty(x => x.LeaseOwner, (string?)null)
                .SetProperty(x => x.LeaseExpiresAt, (DateTimeOffset?)null), cancellationToken) == 1;
    }

    private static Task<int> CloseAttemptAsync(
        RunStoreContext context, Guid runId, string step, int attempt, StepState outcome, StepError? error,
        IReadOnlyDictionary<string, string>? details, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var detailsJson = details is { Count: > 0 } ? System.Text.Json.JsonSerializer.Serialize(details) : null;
        return context.Attempts
            .Where(a => a.RunId == runId && a.Step == step && a.Number == attempt && a.State == StepState.Running)
            .ExecuteUpdateAsync(a => a
                .SetProperty(x => x.State, outcome)
                .SetProperty(x => x.FinishedAt, now)
                .SetProperty(x => x.ErrorKind, error == null ? null : error.Kind)
                .SetProperty(x => x.ErrorType, error == null ? null : error.Type)
                .SetProperty(x => x.ErrorMessage, error == null ? null : error.Message)
                .SetProperty(x => x.Details, detailsJson), cancellationToken);
    }
}
