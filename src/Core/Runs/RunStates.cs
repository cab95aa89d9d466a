namespace Pipelines.Core.Runs;

/// <summary>Where a run is in its life. Terminal: <see cref="Succeeded"/>, <see cref="Failed"/>, <see cref="Cancelled"/>.</summary>
public enum RunState
{
    /// <summary>Accepted and stored; the coordinator has not planned it yet.</summary>
    Pending,
    Running,
    /// <summary>A step failed; pending work is cancelled and running steps are allowed to finish before compensation.</summary>
    Failing,
    /// <summary>Compensations of completed steps are running, in reverse dependency order.</summary>
    Compensating,
    Succeeded,
    Failed,
    Cancelled,
}

public enum StepState
{
    Pending,
    Running,
    Succeeded,
    Failed,
    /// <summary>Not run because of <c>skip_in_env</c>; its dependants proceed.</summary>
    Skipped,
    Cancelled,
    /// <summary>Succeeded, then undone by its handler's compensation after the run failed.</summary>
    Compensated,
}

/// <summary>A linear chain of steps, executed as one routing slip.</summary>
public enum ChainState
{
    /// <summary>Some parent chain has not completed yet.</summary>
    Waiting,
    Dispatched,
    Completed,
    Cancelled,
}

/// <summary>
/// The one place that says which state changes are legal. Stores apply a change as a conditional
/// update whose WHERE clause lists <see cref="SourcesOf(StepState)"/>, so an illegal or repeated
/// transition (a redelivered message, a race between workers) changes nothing.
/// </summary>
public static class StateRules
{
    private static readonly Dictionary<RunState, RunState[]> RunSources = new()
    {
        [RunState.Pending] = [],
        [RunState.Running] = [RunState.Pending],
        [RunState.Failing] = [RunState.Pending, RunState.Running],
        [RunState.Compensating] = [RunState.Failing],
        [RunState.Succeeded] = [RunState.Running],
        [RunState.Failed] = [RunState.Failing, RunState.Compensating],
        [RunState.Cancelled] = [RunState.Pending, RunState.Running],
    };

    private static readonly Dictionary<StepState, StepState[]> StepSources = new()
    {
        [StepState.Pending] = [],
        // Running -> Running is a takeover: a new attempt after the previous owner's lease expired.
        [StepState.Running] = [StepState.Pending, StepState.Running],
        [StepState.Succeeded] = [StepState.Running],
        [StepState.Failed] = [StepState.Running],
        [StepState.Skipped] = [StepState.Pending],
        [StepState.Cancelled] = [StepState.Pending, StepState.Running],
        [StepState.Compensated] = [StepState.Succeeded],
    };

    public static IReadOnlyList<RunState> SourcesOf(RunState target) => RunSources[target];

    public static IReadOnlyList<StepState> SourcesOf(StepState target) => StepSources[target];

    public static bool CanMove(RunState from, RunState to) => RunSources[to].Contains(from);

    public static bool CanMove(StepState from, StepState to) => StepSources[to].Contains(from);

    public static bool IsTerminal(this RunState state) =>
        state is RunState.Succeeded or RunState.Failed or RunState.Cancelled;

    /// <summary>True while new steps of the run may still start.</summary>
    public static bool AcceptsWork(this RunState state) => state is RunState.Pending or RunState.Running;

    public static bool IsFinished(this StepState state) =>
        state is StepState.Succeeded or StepState.Failed or StepState.Skipped or StepState.Cancelled or StepState.Compensated;
}
