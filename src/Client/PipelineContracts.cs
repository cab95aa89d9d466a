using System.Diagnostics.CodeAnalysis;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace Pipelines.Client;

/// <summary>The pipelines of the deployment's definition file, ordered by name.</summary>
public sealed record PipelineList(IReadOnlyList<PipelineSummary> Items);

/// <summary>A pipeline as listed.</summary>
public sealed record PipelineSummary(string Name, string? Description, int Steps, IReadOnlyList<string> Parameters, int Schedules);

/// <summary>A pipeline with its parameters, steps, the schedules its definition declares, and its graph.</summary>
public sealed record Pipeline
{
    public required string Name { get; init; }
    public string? Description { get; init; }
    public IReadOnlyDictionary<string, PipelineParameter> Parameters { get; init; } = new Dictionary<string, PipelineParameter>();
    public IReadOnlyList<PipelineStep> Steps { get; init; } = [];

    /// <summary>Schedules written in the definition file; those created through the API are under <c>/api/v1/schedules</c>.</summary>
    public IReadOnlyList<ScheduleSpec> Schedules { get; init; } = [];

    public required PipelineGraphView Graph { get; init; }
}

/// <summary>A run parameter; <see cref="Type"/> is <c>string</c>, <c>integer</c>, <c>number</c>, <c>boolean</c>, <c>object</c> or <c>array</c>, null for any.</summary>
public sealed record PipelineParameter(string? Type, bool Required, JsonNode? Default, string? Description);

/// <summary>What a step and a sidecar have in common. Secret values never appear: a registry password shows as <c>***</c>.</summary>
public record PipelineContainer
{
    [JsonPropertyOrder(-2)]
    public required string Name { get; init; }
    public string? Description { get; init; }

    /// <summary>The image reference with its tag, e.g. <c>busybox:1.36</c>.</summary>
    public string? Image { get; init; }

    public PipelineBuild? Build { get; init; }
    public IReadOnlyList<string>? Command { get; init; }
    public IReadOnlyList<string>? Entrypoint { get; init; }

    /// <summary>As written; <c>${secret:NAME}</c> references stay references.</summary>
    public IReadOnlyDictionary<string, string>? Env { get; init; }

    /// <summary><c>SOURCE:TARGET:ro|rw</c>.</summary>
    public IReadOnlyList<string>? Volumes { get; init; }

    public string? Workdir { get; init; }
    public PipelineRegistry? Registry { get; init; }
    public PipelineResources? Resources { get; init; }
}

public sealed record PipelineStep : PipelineContainer
{
    public PipelineStep()
    {
    }

    /// <summary>A step with <paramref name="container"/>'s fields; set <see cref="Kind"/> and the rest.</summary>
    [SetsRequiredMembers]
    public PipelineStep(PipelineContainer container)
        : base(container)
    {
        Kind = "";
    }

    /// <summary><c>handler</c>, <c>image</c> or <c>build</c>.</summary>
    [JsonPropertyOrder(-1)]
    public required string Kind { get; init; }

    [JsonPropertyOrder(-1)]
    public string? Handler { get; init; }
    [JsonPropertyOrder(1)]
    public IReadOnlyList<string> DependsOn { get; init; } = [];

    /// <summary>The routing slip (linear chain) the step runs in.</summary>
    [JsonPropertyOrder(1)]
    public int Chain { get; init; }

    /// <summary>The retry policy in effect, the pipeline's defaults applied.</summary>
    [JsonPropertyOrder(1)]
    public PipelineRetry? Retry { get; init; }

    /// <summary>The timeout in effect, e.g. <c>30s</c>.</summary>
    [JsonPropertyOrder(1)]
    public string? Timeout { get; init; }

    [JsonPropertyOrder(1)]
    public string? Pool { get; init; }
    [JsonPropertyOrder(1)]
    public string? Network { get; init; }
    [JsonPropertyOrder(1)]
    public IReadOnlyList<string>? SkipInEnv { get; init; }
    [JsonPropertyOrder(1)]
    public IReadOnlyList<PipelineContainer>? Sidecars { get; init; }
}

public sealed record PipelineBuild(string Context, string? Dockerfile, IReadOnlyDictionary<string, string>? Args);

/// <summary>Registry credentials; <see cref="Password"/> is always <c>***</c>: the worker resolves it, it is never stored or sent.</summary>
public sealed record PipelineRegistry(string Username, string Password);

/// <summary>Resource limits; <see cref="Memory"/> as written, e.g. <c>256m</c>.</summary>
public sealed record PipelineResources(string? Memory, double? Cpus, int? Pids);

/// <summary>A retry policy: attempts in all, <see cref="Backoff"/> <c>fixed</c> or <c>exponential</c>, and delays such as <c>200ms</c>.</summary>
public sealed record PipelineRetry(int Attempts, string Backoff, string Initial, string Max);

/// <summary>The DAG: Mermaid text to draw it, and nodes and edges for a program to.</summary>
public sealed record PipelineGraphView(string Mermaid, IReadOnlyList<GraphNode> Nodes, IReadOnlyList<GraphEdge> Edges);

/// <param name="Id">The step's name.</param>
/// <param name="Label">What runs it: <c>handler: NAME</c> or <c>image: REF</c>.</param>
/// <param name="Level">0 for a step without dependencies, else one more than its deepest parent.</param>
/// <param name="Chain">The routing slip the step runs in.</param>
public sealed record GraphNode(string Id, string Label, int Level, int Chain);

/// <summary><paramref name="From"/> must complete before <paramref name="To"/> starts.</summary>
public sealed record GraphEdge(string From, string To);

/// <summary>A definition that loaded: the pipelines it declares, and any warnings.</summary>
public sealed record DefinitionValidation(bool Valid, IReadOnlyList<string> Pipelines, IReadOnlyList<ApiError> Warnings);
