using Pipelines.Core.Definitions;
using Pipelines.Core.Runs;

namespace Pipelines.Core.Planning;

/// <summary>
/// Turns a pipeline into the rows of a new run: one step row per step and one chain row per
/// linear chain, with the number of parent chains each must wait for. Steps skipped in the
/// current environment start as <see cref="StepState.Skipped"/>; steps reused from the run being
/// retried start as <see cref="StepState.Succeeded"/> with their earlier output.
/// </summary>
public static class RunPlanner
{
    public static (List<StepRecord> Steps, List<ChainRecord> Chains) Plan(
        CatalogEntry pipeline,
        Guid runId,
        string? environment,
        IReadOnlyDictionary<string, string?>? reusedOutputs = null)
    {
        ArgumentNullException.ThrowIfNull(pipeline);
        var graph = pipeline.Graph;
        var steps = new List<StepRecord>(pipeline.Definition.Steps.Count);
        foreach (var chain in graph.Chains)
        {
            for (var position = 0; position < chain.Steps.Count; position++)
            {
                var name = chain.Steps[position];
                var step = new StepRecord { RunId = runId, Name = name, Chain = chain.Index, Position = position, State = StepState.Pending };
                if (reusedOutputs is not null && reusedOutputs.TryGetValue(name, out var output))
                {
                    step.State = StepState.Succeeded;
                    step.Output = output;
                    step.Reused = true;
                }
                else if (IsSkipped(graph.Step(graph.IndexOf(name)), environment))
                {
                    step.State = StepState.Skipped;
                }
                steps.Add(step);
            }
        }

        var chains = graph.Chains
            .Select(c => new ChainRecord { RunId = runId, Index = c.Index, RemainingParents = c.Parents.Count, State = ChainState.Waiting })
            .ToList();
        return (steps, chains);
    }

    public static bool IsSkipped(StepDefinition step, string? environment) =>
        environment is { Length: > 0 } && step.SkipInEnv.Contains(environment, StringComparer.Ordinal);

    /// <summary>The retry policy in force for a step: its own, else the pipeline's default, else one attempt.</summary>
    public static RetryPolicy RetryOf(PipelineDefinition pipeline, StepDefinition step)
    {
        ArgumentNullException.ThrowIfNull(pipeline);
        ArgumentNullException.ThrowIfNull(step);
        return step.Retry ?? pipeline.Defaults?.Retry ?? RetryPolicy.Once;
    }

    public static TimeSpan? TimeoutOf(PipelineDefinition pipeline, StepDefinition step)
    {
        ArgumentNullException.ThrowIfNull(pipeline);
        ArgumentNullException.ThrowIfNull(step);
        return (step.Timeout ?? pipeline.Defaults?.Timeout)?.Value;
    }
}
