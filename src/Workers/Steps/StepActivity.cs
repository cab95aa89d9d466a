using MassTransit;
using Pipelines.Core.Contracts;

namespace Pipelines.Workers.Steps;

/// <summary>The Courier activity of every step, on every step queue; the work is in <see cref="StepRunner"/>.</summary>
public sealed class StepActivity(StepRunner runner) : IExecuteActivity<StepArguments>
{
    public Task<ExecutionResult> Execute(ExecuteContext<StepArguments> context) => runner.ExecuteAsync(context);
}
