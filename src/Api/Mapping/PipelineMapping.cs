using System.Text.Json;
using Pipelines.Client;
using Pipelines.Core.Definitions;
using Pipelines.Core.Execution;
using Pipelines.Core.Graph;
using Pipelines.Core.Planning;

namespace Pipelines.Api.Mapping;

/// <summary>Loaded definitions as the API shows them. A registry password is shown as <c>***</c>, whatever it names.</summary>
internal static class PipelineMapping
{
    public static PipelineSummary ToSummary(this CatalogEntry entry) => new(
        entry.Definition.Name,
        entry.Definition.Description,
        entry.Definition.Steps.Count,
        [.. entry.Definition.Parameters.Keys.Order(StringComparer.Ordinal)],
        entry.Definition.Schedules.Count);

    public static Pipeline ToPipeline(this CatalogEntry entry)
    {
        var definition = entry.Definition;
        var graph = entry.Graph;
        return new Pipeline
        {
            Name = definition.Name,
            Description = definition.Description,
            Parameters = definition.Parameters.Values.ToDictionary(
                p => p.Name,
                p => new PipelineParameter(p.Type is { } type ? Snake(type) : null, p.Required, p.Default?.DeepClone(), p.Description),
                StringComparer.Ordinal),
            Steps = [.. graph.TopologicalOrder.Select(i => ToStep(definition, graph, graph.Step(i)))],
            Schedules = [.. definition.Schedules.Select(s => s.ToSpec(definition.Name))],
            Graph = new PipelineGraphView(
                GraphRenderer.Mermaid(graph),
                [.. graph.TopologicalOrder.Select(i => new GraphNode(graph.Step(i).Name, GraphRenderer.Kind(graph, graph.Step(i).Name), graph.Levels[i], graph.ChainOfStep[i]))],
                [.. graph.TopologicalOrder.SelectMany(child => graph.Parents[child].Select(parent => new GraphEdge(graph.Step(parent).Name, graph.Step(child).Name)))]),
        };
    }

    public static ScheduleSpec ToSpec(this ScheduleDefinition schedule, string pipeline) => new()
    {
        Pipeline = pipeline,
        Name = schedule.Name,
        Cron = schedule.Cron,
        Timezone = schedule.Timezone,
        Payload = schedule.Payload?.DeepClone().AsObject(),
        Enabled = schedule.Enabled,
        Misfire = schedule.Misfire,
        Overlap = schedule.Overlap,
        StartAt = schedule.StartAt,
        EndAt = schedule.EndAt,
    };

    private static PipelineStep ToStep(PipelineDefinition pipeline, PipelineGraph graph, StepDefinition step)
    {
        var retry = RunPlanner.RetryOf(pipeline, step);
        var timeout = RunPlanner.TimeoutOf(pipeline, step);
        return new PipelineStep(ToContainer(step))
        {
            Kind = step.Handler is not null ? "handler" : step.Build is not null ? "build" : "image",
            Handler = step.Handler,
            DependsOn = step.DependsOn,
            Chain = graph.ChainOfStep[graph.IndexOf(step.Name)],
            Retry = new PipelineRetry(retry.Attempts, Snake(retry.Backoff), retry.Initial.ToString(), retry.Max.ToString()),
            Timeout = timeout is { } t ? new Duration(t).ToString() : null,
            Pool = step.Pool,
            Network = step.Network,
            SkipInEnv = step.SkipInEnv.Count == 0 ? null : step.SkipInEnv,
            Sidecars = step.Sidecars.Count == 0 ? null : [.. step.Sidecars.Select(ToContainer)],
        };
    }

    private static PipelineContainer ToContainer(ContainerDefinition container) => new()
    {
        Name = container.Name,
        Description = container.Description,
        Image = container.ImageReference,
        Build = BuildOf(container),
        Command = container.Command?.Arguments,
        Entrypoint = container.Entrypoint?.Arguments,
        Env = NullIfEmpty(container.Env),
        Volumes = container.Volumes.Count == 0 ? null : [.. container.Volumes.Select(v => v.ToString())],
        Workdir = container.Workdir,
        Registry = container.Registry is { } registry ? new PipelineRegistry(registry.Username, RevealedSecrets.Masked) : null,
        Resources = ResourcesOf(container),
    };

    private static PipelineBuild? BuildOf(ContainerDefinition container) =>
        container.Build is { } build ? new PipelineBuild(build.Context, build.Dockerfile, NullIfEmpty(build.Args)) : null;

    private static PipelineResources? ResourcesOf(ContainerDefinition container) =>
        container.Resources is { } r ? new PipelineResources(r.Memory?.ToString(), r.Cpus, r.Pids) : null;

    private static IReadOnlyDictionary<string, string>? NullIfEmpty(IReadOnlyDictionary<string, string> values) =>
        values.Count == 0 ? null : values;

    private static string Snake<T>(T value) where T : struct, Enum => JsonNamingPolicy.SnakeCaseLower.ConvertName(value.ToString());
}
