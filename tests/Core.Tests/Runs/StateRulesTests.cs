using Pipelines.Core.Runs;

namespace Pipelines.Core.Tests.Runs;

public sealed class StateRulesTests
{
    [Theory]
    [InlineData(StepState.Succeeded)]
    [InlineData(StepState.Failed)]
    [InlineData(StepState.Cancelled)]
    [InlineData(StepState.Skipped)]
    public void A_finished_step_never_runs_again(StepState finished) =>
        Assert.False(StateRules.CanMove(finished, StepState.Running));

    [Fact]
    public void Only_a_succeeded_step_can_be_compensated() =>
        Assert.Equal([StepState.Succeeded], StateRules.SourcesOf(StepState.Compensated));

    [Fact]
    public void A_running_step_can_be_taken_over_as_a_new_attempt() =>
        Assert.True(StateRules.CanMove(StepState.Running, StepState.Running));

    [Theory]
    [InlineData(RunState.Succeeded)]
    [InlineData(RunState.Failed)]
    [InlineData(RunState.Cancelled)]
    public void A_terminal_run_never_changes(RunState terminal) =>
        Assert.All(Enum.GetValues<RunState>(), target => Assert.False(StateRules.CanMove(terminal, target)));

    [Fact]
    public void A_failing_run_cannot_be_cancelled_or_succeed()
    {
        Assert.False(StateRules.CanMove(RunState.Failing, RunState.Cancelled));
        Assert.False(StateRules.CanMove(RunState.Failing, RunState.Succeeded));
        Assert.True(StateRules.CanMove(RunState.Failing, RunState.Compensating));
    }

    [Fact]
    public void Only_pending_and_running_runs_accept_new_steps() =>
        Assert.Equal([RunState.Pending, RunState.Running], Enum.GetValues<RunState>().Where(s => s.AcceptsWork()));
}
