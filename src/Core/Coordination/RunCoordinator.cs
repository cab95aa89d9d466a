using MassTransit.Courier.Contracts;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Pipelines.Core.Contracts;
using Pipelines.Core.Graph;
using Pipelines.Core.Persistence;
using Pipelines.Core.Planning;
using Pipelines.Core.Runs;
using Pipelines.Core.Telemetry;

namespace Pipelines.Core.Coordination;

/// <summary>What the coordinator decided inside its transaction and does after the commit.</summary>
public sealed class CoordinatorActions
{
    public List<RoutingSlip> Slips { get; } = [];
    public List<object> Events { get; } = [];
}

/// <summary>How a chain's routing slip ended.</summary>
public enum ChainEnd
{
    Completed,
    Faulted,
    /// <summary>An activity stopped the slip: its run no longer accepts work, or its step was cancelled.</summary>
    Terminated,
}

/// <summary>
/// Keeps each run moving: plans it, starts every chain whose parent chains have all completed,
/// fails, cancels and compensates. Every decision about a run happens in one transaction that
/// first updates the run's row, which serializes the coordinator's transactions for that run
/// across processes; so when the parents of a join finish at the same instant on different
/// workers, exactly one transaction sees the join's last parent complete and starts it.
/// Redelivered events find their chain already moved and change nothing.
/// </summary>
public sealed partial class RunCoordinator(
    RunStore store, PipelineCatalog catalog, RoutingSlipPlanner planner, RunLauncher launcher,
    IOptions<CoordinatorOptions> options, ILogger<RunCoordinator> logger)
{
    /// <summary>The longest wait between two resends of a stalled chain.</summary>
    private static readonly TimeSpan MaxStallWait = TimeSpan.FromHours(1);

    private RoutingSlipPlanner Planner => planner;

    private TimeSpan StallGrace => options.Value.StalledChainGrace;

    private DateTimeOffset Now => store.Now;

    public async Task<CoordinatorActions> StartAsync(StartRun message, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(message);
        if (await InRunAsync(message.RunId, BeginAsync, cancellationToken) is { } actions)
        {
            return actions;
        }
        if (catalog.Find(message.Pipeline) is null)
        {
            LogUnknownRun(message.RunId, message.Pipeline);
            return new CoordinatorActions();
        }
        // Published directly on the bus (not through RunLauncher): store the run first. An
        // idempotency key stored before under another id (a publisher that did not derive the id
        // from the key) resolves to that run.
        var stored = await launcher.StoreAsync(message.RunId, new RunRequest
        {
            Pipeline = message.Pipeline,
            Payload = message.Payload is null ? null : System.Text.Json.Nodes.JsonNode.Parse(message.Payload)?.AsObject(),
            IdempotencyKey = message.IdempotencyKey,
            Trigger = message.Trigger,
        }, System.Diagnostics.Activity.Current?.Id, cancellationToken);
        return await InKnownRunAsync(stored.RunId, BeginAsync, cancellationToken);
    }

    private Task BeginAsync(RunScope scope)
    {
        if (scope.Run.State == RunState.Pending)
        {
            scope.Run.State = RunState.Running;
            scope.Run.StartedAt = store.Now;
            scope.DispatchReadyChains();
            scope.Settle();
        }
        else if (scope.Run.State == RunState.Running)
        {
            // A redelivered StartRun: resend chains that were dispatched but never began, in case
            // the first delivery committed and then failed to send them. Duplicates are harmless:
            // a step is claimed once.
            scope.RedispatchUnstartedChains();
        }
        return Task.CompletedTask;
    }

    public Task<CoordinatorActions> ChainEndedAsync(Guid runId, int chain, ChainEnd end, CancellationToken cancellationToken) =>
        InKnownRunAsync(runId, async scope =>
        {
            var record = scope.Chain(chain);
            if (record.State != ChainState.Dispatched)
            {
                // A redelivered event: its first delivery may have committed and then failed to send
                // the chains it started. Sending them again is harmless, a step is claimed once.
                if (scope.Run.State.AcceptsWork())
                {
                    scope.RedispatchUnstartedChains();
                }
                return;
            }
            await scope.EndChainAsync(record, end, cancellationToken);
        }, cancellationToken);

    /// <summary>
    /// Looks again at the run's chains that were dispatched and then went quiet for longer than their
    /// wait (<see cref="CoordinatorOptions.StalledChainGrace"/>, doubled on each resend): nothing of
    /// theirs is running or finished meanwhile. Either the slip never reached a worker (it is sent
    /// again; a step is claimed once, so a copy that does arrive changes nothing) or the event of its
    /// end never reached the coordinator (the chain is ended from its steps' states, as that event
    /// would have). Both are a message lost between processes, which no redelivery repairs.
    /// </summary>
    public Task<CoordinatorActions> ResumeStalledChainsAsync(Guid runId, CancellationToken cancellationToken) =>
        InKnownRunAsync(runId, async scope =>
        {
            if (scope.Run.State is not (RunState.Running or RunState.Failing))
            {
                return;
            }
            var now = store.Now;
            // A chain without a check time was dispatched before the store had one: it is due now.
            foreach (var chain in scope.Chains.Where(c => c.State == ChainState.Dispatched && (c.StallCheckAt ?? now) <= now).ToList())
            {
                var steps = scope.Steps.Where(s => s.Chain == chain.Index).ToList();
                var lastSeen = chain.QuietSince ?? scope.Run.StartedAt ?? now;
                var wait = (chain.StallCheckAt ?? lastSeen) - lastSeen;
                wait = wait < StallGrace ? StallGrace : wait;
                var quietSince = steps.Any(s => s.State == StepState.Running) ? now
                    : steps.Select(s => s.FinishedAt ?? s.StartedAt).Append(lastSeen).Max()!.Value;
                if (now - quietSince < wait)
                {
                    // In flight (a running step has a lease of its own), or moved lately: look again later.
                    chain.QuietSince = quietSince;
                    chain.StallCheckAt = quietSince + wait;
                    continue;
                }
                var rest = scope.RemainderOf(chain.Index);
                if (rest.Count == 0)
                {
                    var end = steps.Any(s => s.State == StepState.Failed) ? ChainEnd.Faulted
                        : steps.Any(s => s.State == StepState.Cancelled) ? ChainEnd.Terminated
                        : ChainEnd.Completed;
                    LogChainEndMissing(runId, chain.Index, now - quietSince, end);
                    await scope.EndChainAsync(chain, end, cancellationToken);
                }
                else if (scope.Run.State.AcceptsWork())
                {
                    LogResendingChain(runId, chain.Index, rest[0], now - quietSince);
                    scope.Dispatch(chain.Index, rest);
                    var longer = wait * 2;
                    chain.StallCheckAt = now + (longer > MaxStallWait ? MaxStallWait : longer);
                }
                else
                {
                    // Steps left but the run takes no more work: not ours to resend, and not to look at every sweep.
                    chain.StallCheckAt = now + wait;
                }
            }
        }, cancellationToken);

    /// <summary>A step that outlived its delivery finished in the background; continue its chain.</summary>
    public Task<CoordinatorActions> DetachedStepFinishedAsync(Guid runId, string step, CancellationToken cancellationToken) =>
        InKnownRunAsync(runId, async scope =>
        {
            var record = scope.Steps.Single(s => s.Name == step);
            var chain = scope.Chain(record.Chain);
            if (chain.State != ChainState.Dispatched)
            {
                return;
            }
            switch (record.State)
            {
                case StepState.Succeeded:
                    var rest = scope.RemainderOf(chain.Index, after: record.Position);
                    if (rest.Count == 0)
                    {
                        scope.CompleteChain(chain);
                    }
                    else if (scope.Run.State.AcceptsWork())
                    {
                        scope.Dispatch(chain.Index, rest);
                    }
                    else
                    {
                        chain.State = ChainState.Cancelled;
                    }
                    break;
                case StepState.Failed:
                    chain.State = ChainState.Cancelled;
                    await scope.FailAsync(record, cancellationToken);
                    break;
                case StepState.Cancelled:
                    chain.State = ChainState.Cancelled;
                    break;
                default:
                    return;
            }
            await scope.SettleAsync(cancellationToken);
        }, cancellationToken);

    public Task<CoordinatorActions> CancelAsync(Guid runId, CancellationToken cancellationToken) =>
        InKnownRunAsync(runId, async scope =>
        {
            if (!StateRules.CanMove(scope.Run.State, RunState.Cancelled))
            {
                return;
            }
            scope.Run.State = RunState.Cancelled;
            scope.Run.FinishedAt = store.Now;
            foreach (var chain in scope.Chains.Where(c => c.State is ChainState.Waiting or ChainState.Dispatched))
            {
                chain.State = ChainState.Cancelled;
            }
            await scope.CancelPendingStepsAsync(cancellationToken);
            scope.Actions.Events.Add(new RunCancellationRequested(runId));
            scope.Actions.Events.Add(new RunFinished(runId, scope.Run.Pipeline, RunState.Cancelled, null));
            PipelinesTelemetry.RecordRunFinished(scope.Run.Pipeline, nameof(RunState.Cancelled));
        }, cancellationToken);

    /// <summary>
    /// A compensation slip ended. The run is failed once every compensation has ended; a copy of the
    /// slip that stopped at a compensation another copy holds, or a slip that faulted, leaves the rest
    /// to that copy or to the sweep (<see cref="ResumeStalledCompensationsAsync"/>).
    /// </summary>
    public Task<CoordinatorActions> CompensationEndedAsync(Guid runId, ChainEnd end, CancellationToken cancellationToken) =>
        InKnownRunAsync(runId, async scope =>
        {
            if (scope.Run.State != RunState.Compensating)
            {
                return;
            }
            var left = await scope.CompensationsLeftAsync(cancellationToken);
            if (left.Count == 0)
            {
                scope.Finish(RunState.Failed);
            }
            else if (end == ChainEnd.Faulted)
            {
                LogCompensationSlipFaulted(runId, left[0], scope.Run.CompensationCheckAt);
            }
        }, cancellationToken);

    /// <summary>
    /// Looks again at a compensating run that went quiet for longer than its wait
    /// (<see cref="CoordinatorOptions.StalledChainGrace"/>, doubled on each resend): no compensation
    /// of it running or ending meanwhile. Either the end of its slip never reached the coordinator
    /// (every compensation has ended: the run is failed, as that end would have) or the slip was lost
    /// before its last compensation (the rest is sent again; a compensation runs under a lease, so a
    /// copy that does arrive undoes nothing twice).
    /// </summary>
    public Task<CoordinatorActions> ResumeStalledCompensationsAsync(Guid runId, CancellationToken cancellationToken) =>
        InKnownRunAsync(runId, async scope =>
        {
            var run = scope.Run;
            var now = store.Now;
            if (run.State != RunState.Compensating || run.CompensationCheckAt > now)
            {
                return;
            }
            var left = await scope.CompensationsLeftAsync(cancellationToken);
            if (left.Count == 0)
            {
                LogCompensationEndMissing(runId);
                scope.Finish(RunState.Failed);
                return;
            }
            // A run compensating since before the store kept these times starts its wait now: its
            // compensation may be running without a lease.
            var lastSeen = run.CompensationQuietSince ?? now;
            var wait = (run.CompensationCheckAt ?? lastSeen) - lastSeen;
            wait = wait < StallGrace ? StallGrace : wait;
            var quietSince = scope.Steps.Any(s => left.Contains(s.Name) && s.LeaseExpiresAt > now) ? now
                : scope.Steps.Select(s => s.CompensationEndedAt).Append(lastSeen).Max()!.Value;
            if (now - quietSince < wait)
            {
                run.CompensationQuietSince = quietSince;
                run.CompensationCheckAt = quietSince + wait;
                return;
            }
            LogResendingCompensations(runId, left[0], now - quietSince);
            scope.DispatchCompensations(left);
            var longer = wait * 2;
            run.CompensationCheckAt = now + (longer > MaxStallWait ? MaxStallWait : longer);
        }, cancellationToken);

    /// <summary>
    /// Re-dispatches the rest of a chain whose detached step lost its worker (the lease expired).
    /// The step is then claimed again by whichever worker receives it, as a new attempt.
    /// </summary>
    public Task<CoordinatorActions> RecoverAbandonedStepAsync(Guid runId, string step, CancellationToken cancellationToken) =>
        InKnownRunAsync(runId, async scope =>
        {
            var now = store.Now;
            var released = await scope.Context.Steps
                .Where(s => s.RunId == runId && s.Name == step && s.State == StepState.Running && s.Detached && s.LeaseExpiresAt < now)
                .ExecuteUpdateAsync(s => s
                    .SetProperty(x => x.Detached, false)
                    .SetProperty(x => x.LeaseOwner, (string?)null)
                    .SetProperty(x => x.LeaseExpiresAt, (DateTimeOffset?)null), cancellationToken);
            if (released == 0)
            {
                return;
            }
            var record = scope.Steps.Single(s => s.Name == step);
            LogRecoveringStep(runId, step);
            scope.Dispatch(record.Chain, scope.RemainderOf(record.Chain, after: record.Position - 1));
        }, cancellationToken);

    private static async Task<StepRecord?> FailedStepOfChainAsync(RunScope scope, int chain) =>
        await scope.Context.Steps.AsNoTracking()
            .Where(s => s.RunId == scope.Run.Id && s.Chain == chain && s.State == StepState.Failed)
            .OrderBy(s => s.Position)
            .FirstOrDefaultAsync();

    private async Task<CoordinatorActions> InKnownRunAsync(Guid runId, Func<RunScope, Task> decide, CancellationToken cancellationToken)
    {
        if (await InRunAsync(runId, decide, cancellationToken) is { } actions)
        {
            return actions;
        }
        LogUnknownRun(runId, "");
        return new CoordinatorActions();
    }

    /// <summary>Runs <paramref name="decide"/> in the run's transaction; null when the run is not in the store.</summary>
    private async Task<CoordinatorActions?> InRunAsync(Guid runId, Func<RunScope, Task> decide, CancellationToken cancellationToken) =>
        await store.WriteAsync(async context =>
        {
            // Taking the row lock first serializes this run's coordinator transactions.
            var locked = await context.Runs.Where(r => r.Id == runId)
                .ExecuteUpdateAsync(r => r.SetProperty(x => x.Version, x => x.Version + 1), cancellationToken);
            if (locked == 0)
            {
                return null;
            }
            var actions = new CoordinatorActions();
            var run = await context.Runs.SingleAsync(r => r.Id == runId, cancellationToken);
            var entry = catalog.Find(run.Pipeline);
            if (entry is null)
            {
                LogUnknownRun(runId, run.Pipeline);
                return actions;
            }
            var chains = await context.Chains.Where(c => c.RunId == runId).OrderBy(c => c.Index).ToListAsync(cancellationToken);
            var steps = await context.Steps.AsNoTracking().Where(s => s.RunId == runId).ToListAsync(cancellationToken);
            await decide(new RunScope(this, context, entry, run, chains, steps, actions));
            return actions;
        }, cancellationToken);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Run {RunId} of pipeline '{Pipeline}' is not known here; message dropped")]
    private partial void LogUnknownRun(Guid runId, string pipeline);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Run {RunId}: step '{Step}' lost its worker; dispatching it again")]
    private partial void LogRecoveringStep(Guid runId, string step);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Run {RunId}: chain {Chain} dispatched and quiet for {Quiet}, its step '{Step}' never claimed; sending its slip again")]
    private partial void LogResendingChain(Guid runId, int chain, string step, TimeSpan quiet);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Run {RunId}: chain {Chain} finished {Quiet} ago but its end never arrived; ending it as {End}")]
    private partial void LogChainEndMissing(Guid runId, int chain, TimeSpan quiet, ChainEnd end);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Run {RunId}: its compensation slip faulted before the compensation of step '{Step}'; the sweep sends the rest again after {CheckAt}")]
    private partial void LogCompensationSlipFaulted(Guid runId, string step, DateTimeOffset? checkAt);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Run {RunId}: compensations quiet for {Quiet}, the compensation of step '{Step}' never claimed; sending the rest of them again")]
    private partial void LogResendingCompensations(Guid runId, string step, TimeSpan quiet);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Run {RunId}: every compensation ended but the end of their slip never arrived; failing the run")]
    private partial void LogCompensationEndMissing(Guid runId);

    [LoggerMessage(Level = LogLevel.Information, Message = "Run {RunId} of '{Pipeline}' {State}")]
    private partial void LogRunFinished(Guid runId, string pipeline, RunState state);

    /// <summary>The state of one run inside one coordinator transaction.</summary>
    private sealed class RunScope(
        RunCoordinator coordinator, RunStoreContext context, CatalogEntry entry,
        RunRecord run, List<ChainRecord> chains, List<StepRecord> steps, CoordinatorActions actions)
    {
        public RunStoreContext Context => context;
        public RunRecord Run => run;
        public List<ChainRecord> Chains => chains;
        public List<StepRecord> Steps => steps;
        public CoordinatorActions Actions => actions;
        private PipelineGraph Graph => entry.Graph;

        public ChainRecord Chain(int index) => chains[index];

        /// <summary>Steps of a chain after <paramref name="after"/> that still have to run, in order.</summary>
        public List<string> RemainderOf(int chain, int after = -1) => steps
            .Where(s => s.Chain == chain && s.Position > after && s.State is StepState.Pending or StepState.Running)
            .OrderBy(s => s.Position)
            .Select(s => s.Name)
            .ToList();

        public void DispatchReadyChains()
        {
            foreach (var chain in chains.Where(c => c.State == ChainState.Waiting && c.RemainingParents == 0).ToList())
            {
                if (!run.State.AcceptsWork())
                {
                    chain.State = ChainState.Cancelled;
                    continue;
                }
                chain.State = ChainState.Dispatched;
                var rest = RemainderOf(chain.Index);
                if (rest.Count == 0)
                {
                    // Every step skipped or reused from the retried run.
                    CompleteChain(chain);
                }
                else
                {
                    Dispatch(chain.Index, rest);
                }
            }
        }

        public void RedispatchUnstartedChains()
        {
            foreach (var chain in chains.Where(c => c.State == ChainState.Dispatched))
            {
                var rest = RemainderOf(chain.Index);
                if (rest.Count > 0 && steps.Single(s => s.Name == rest[0]).State == StepState.Pending)
                {
                    Dispatch(chain.Index, rest);
                }
            }
        }

        public void Dispatch(int chain, List<string> rest)
        {
            var inChain = rest.ToHashSet(StringComparer.Ordinal);
            var upstream = rest
                .SelectMany(step => entry.Definition.FindStep(step)!.DependsOn)
                .Where(dependency => !inChain.Contains(dependency))
                .Distinct(StringComparer.Ordinal)
                .ToDictionary(d => d, d => steps.Single(s => s.Name == d).Output, StringComparer.Ordinal);
            actions.Slips.Add(coordinator.Planner.PlanChain(run.Id, run.Pipeline, chain, rest, upstream));
            var now = coordinator.Now;
            chains[chain].QuietSince = now;
            chains[chain].StallCheckAt = now + coordinator.StallGrace;
        }

        /// <summary>What a chain's end (its slip's, or its steps' when that was lost) does to the run.</summary>
        public async Task EndChainAsync(ChainRecord chain, ChainEnd end, CancellationToken cancellationToken)
        {
            switch (end)
            {
                case ChainEnd.Completed:
                    CompleteChain(chain);
                    break;
                case ChainEnd.Faulted:
                    chain.State = ChainState.Cancelled;
                    await FailAsync(await FailedStepOfChainAsync(this, chain.Index), cancellationToken);
                    break;
                default:
                    chain.State = ChainState.Cancelled;
                    break;
            }
            await SettleAsync(cancellationToken);
        }

        public void CompleteChain(ChainRecord chain)
        {
            chain.State = ChainState.Completed;
            run.RemainingChains--;
            foreach (var child in Graph.Chains[chain.Index].Children)
            {
                chains[child].RemainingParents--;
            }
            DispatchReadyChains();
        }

        public async Task FailAsync(StepRecord? failedStep, CancellationToken cancellationToken)
        {
            if (!StateRules.CanMove(run.State, RunState.Failing))
            {
                return;
            }
            run.State = RunState.Failing;
            run.FailedStep = failedStep?.Name;
            run.Error = failedStep is null ? "a step failed" : $"step '{failedStep.Name}' failed: {failedStep.ErrorMessage}";
            foreach (var waiting in chains.Where(c => c.State == ChainState.Waiting))
            {
                waiting.State = ChainState.Cancelled;
            }
            await CancelPendingStepsAsync(cancellationToken);
        }

        public async Task CancelPendingStepsAsync(CancellationToken cancellationToken)
        {
            var now = coordinator.Now;
            await context.Steps
                .Where(s => s.RunId == run.Id && s.State == StepState.Pending)
                .ExecuteUpdateAsync(s => s.SetProperty(x => x.State, StepState.Cancelled).SetProperty(x => x.FinishedAt, now), cancellationToken);
        }

        /// <summary>Finishes the run when nothing is left to do.</summary>
        public void Settle()
        {
            if (run.State == RunState.Running && run.RemainingChains == 0)
            {
                Finish(RunState.Succeeded);
            }
        }

        public async Task SettleAsync(CancellationToken cancellationToken)
        {
            Settle();
            if (run.State != RunState.Failing)
            {
                return;
            }
            if (await context.Steps.AnyAsync(s => s.RunId == run.Id && s.State == StepState.Running, cancellationToken))
            {
                return; // running branches finish first, so that their work is compensated too
            }
            var toCompensate = await CompensationsLeftAsync(cancellationToken);
            if (toCompensate.Count == 0)
            {
                Finish(RunState.Failed);
                return;
            }
            run.State = RunState.Compensating;
            DispatchCompensations(toCompensate);
        }

        /// <summary>
        /// The completed handler steps whose compensation has not ended, in the order they are undone:
        /// reverse dependency order across the whole DAG. Steps reused from a retried run are not this
        /// run's to undo.
        /// </summary>
        public async Task<List<string>> CompensationsLeftAsync(CancellationToken cancellationToken)
        {
            var open = (await context.Steps.AsNoTracking()
                .Where(s => s.RunId == run.Id && s.State == StepState.Succeeded && !s.Reused && s.CompensationEndedAt == null)
                .Select(s => s.Name).ToListAsync(cancellationToken)).ToHashSet(StringComparer.Ordinal);
            return Graph.TopologicalOrder.Reverse()
                .Select(i => Graph.Step(i))
                .Where(s => s.Handler is not null && open.Contains(s.Name))
                .Select(s => s.Name)
                .ToList();
        }

        public void DispatchCompensations(List<string> steps)
        {
            actions.Slips.Add(coordinator.Planner.PlanCompensation(run.Id, run.Pipeline, steps));
            var now = coordinator.Now;
            run.CompensationQuietSince = now;
            run.CompensationCheckAt = now + coordinator.StallGrace;
        }

        public void Finish(RunState state)
        {
            run.State = state;
            run.FinishedAt = coordinator.Now;
            actions.Events.Add(new RunFinished(run.Id, run.Pipeline, state, run.FailedStep));
            coordinator.LogRunFinished(run.Id, run.Pipeline, state);
            PipelinesTelemetry.RecordRunFinished(run.Pipeline, state.ToString());
        }
    }
}
