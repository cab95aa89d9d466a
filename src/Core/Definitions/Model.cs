using System.ComponentModel;
using System.ComponentModel.DataAnnotations;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace Pipelines.Core.Definitions;

// The definition model. Property names become keys in snake_case (DependsOn → depends_on); the binder,
// the validator and the JSON Schema all read them from here, so a key is named in one place only.

/// <summary>A whole definition file: <c>pipelines:</c>, a mapping of pipeline name to pipeline.</summary>
public sealed class PipelineFileDefinition : DefinitionNode
{
    [JsonPropertyName("$schema"), Description("The JSON Schema editors check this file with; the loader does not read it.")]
    public string? Schema { get; init; }

    [Required, MinLength(1, ErrorMessage = "define at least one pipeline"), Description("Pipelines by name.")]
    public IReadOnlyDictionary<string, PipelineDefinition> Pipelines { get; init; } = new Dictionary<string, PipelineDefinition>();
}

[DefinitionKind("pipeline")]
public sealed class PipelineDefinition : DefinitionNode, INamedByKey
{
    [JsonIgnore]
    public string Name { get; set; } = "";

    [Description("What the pipeline does.")]
    public string? Description { get; init; }

    [Description("Named inputs of a run, checked when a run starts.")]
    public IReadOnlyDictionary<string, ParameterDefinition> Parameters { get; init; } = new Dictionary<string, ParameterDefinition>();

    [Description("Retry and timeout applied to every step that does not set its own.")]
    public StepDefaults? Defaults { get; init; }

    [Required, MinLength(1, ErrorMessage = "a pipeline needs at least one step"), Description("The steps; order does not matter, depends_on does.")]
    public IReadOnlyList<StepDefinition> Steps { get; init; } = [];

    [Description("Recurring runs of this pipeline.")]
    public IReadOnlyList<ScheduleDefinition> Schedules { get; init; } = [];

    /// <summary>Folder of the definition file; relative volume sources and build contexts start here.</summary>
    [JsonIgnore]
    public string BaseDirectory { get; internal set; } = ".";

    public StepDefinition? FindStep(string name) => Steps.FirstOrDefault(s => s.Name == name);
}

#pragma warning disable CA1720 // the members name JSON types, which is what users write in 'type:'
public enum ParameterType
{
    String,
    Integer,
    Number,
    Boolean,
    Object,
    Array,
}
#pragma warning restore CA1720

[DefinitionKind("parameter")]
public sealed class ParameterDefinition : DefinitionNode, INamedByKey
{
    [JsonIgnore]
    public string Name { get; set; } = "";

    [Description("string, integer, number, boolean, object or array.")]
    public ParameterType? Type { get; init; }

    [Description("A run without this parameter is refused. Default false.")]
    public bool Required { get; init; }

    [Description("Value used when a run does not give one.")]
    public JsonNode? Default { get; init; }

    public string? Description { get; init; }
}

public sealed class StepDefaults : DefinitionNode
{
    public RetryPolicy? Retry { get; init; }

    [Description("Longest a step may run, e.g. 10m.")]
    public Duration? Timeout { get; init; }
}

public enum BackoffKind
{
    Fixed,
    Exponential,
}

public sealed class RetryPolicy : DefinitionNode
{
    /// <summary>No retry: one attempt.</summary>
    public static RetryPolicy Once { get; } = new() { Attempts = 1 };

    [Description("Attempts in all, the first included. Default 1 (no retry).")]
    public int Attempts { get; init; } = 1;

    [Description("fixed or exponential (default). Delays get up to 20% random jitter.")]
    public BackoffKind Backoff { get; init; } = BackoffKind.Exponential;

    [Description("Delay before the first retry. Default 1s.")]
    public Duration Initial { get; init; } = new(TimeSpan.FromSeconds(1));

    [Description("Longest delay between retries. Default 5m.")]
    public Duration Max { get; init; } = new(TimeSpan.FromMinutes(5));

    /// <summary>Delay before attempt <paramref name="nextAttempt"/> (2 for the first retry), jitter not included.</summary>
    public TimeSpan DelayBefore(int nextAttempt)
    {
        var retries = Math.Max(0, nextAttempt - 2);
        var delay = Backoff == BackoffKind.Fixed
            ? Initial.Value
            : TimeSpan.FromTicks((long)Math.Min(Initial.Value.Ticks * Math.Pow(2, retries), Max.Value.Ticks));
        return delay > Max.Value ? Max.Value : delay;
    }
}

/// <summary>What a container step and a sidecar have in common.</summary>
public abstract class ContainerDefinition : DefinitionNode
{
    [Required, Description("Unique within the pipeline: letters, digits, '_', '-' and '.'.")]
    public string Name { get; init; } = "";

    public string? Description { get; init; }

    [Description("Container image reference, e.g. alpine or registry.example.com/team/loader.")]
    public string? Image { get; init; }

    [Description("Image tag; default latest (or the tag written in image).")]
    public string? Tag { get; init; }

    [Description("Build the image from a folder instead of pulling it.")]
    public BuildDefinition? Build { get; init; }

    [Description("Arguments: a list, or one string split like a shell does.")]
    public CommandLine? Command { get; init; }

    public CommandLine? Entrypoint { get; init; }

    /// <summary>Values hold <c>${secret:NAME}</c> references as <see cref="SecretText"/> describes; resolve them with <see cref="SecretText.Resolve"/>.</summary>
    [Description("Environment variables. ${secret:NAME} is resolved on the worker and never stored.")]
    public IReadOnlyDictionary<string, string> Env { get; init; } = new Dictionary<string, string>();

    [Description("SOURCE:TARGET[:ro|rw] — a host path or a named volume.")]
    public IReadOnlyList<VolumeMount> Volumes { get; init; } = [];

    [Description("Working directory inside the container.")]
    public string? Workdir { get; init; }

    [Description("Credentials for a private registry.")]
    public RegistryCredentials? Registry { get; init; }

    public ResourceLimits? Resources { get; init; }

    [Description("Labels added to the container.")]
    public IReadOnlyDictionary<string, string> Labels { get; init; } = new Dictionary<string, string>();

    /// <summary>The image reference with its tag: <c>alpine:3.20</c>. Null for a build.</summary>
    [JsonIgnore]
    public string? ImageReference => Image is null ? null
        : Tag is not null ? $"{Image}:{Tag}"
        : HasTag(Image) ? Image
        : $"{Image}:latest";

    private static bool HasTag(string image) =>
        image.Contains('@', StringComparison.Ordinal) || image.LastIndexOf(':') > image.LastIndexOf('/');
}

[DefinitionKind("step")]
public sealed class StepDefinition : ContainerDefinition
{
    [Description("Steps that must complete before this one starts.")]
    public IReadOnlyList<string> DependsOn { get; init; } = [];

    [Description("Name of a handler registered in a worker. Exactly one of handler, image or build.")]
    public string? Handler { get; init; }

    [Description("Containers started before the step in its network namespace, removed after it.")]
    public IReadOnlyList<SidecarDefinition> Sidecars { get; init; } = [];

    [Description("Docker network: none (default), bridge, or a named network.")]
    public string? Network { get; init; }

    public RetryPolicy? Retry { get; init; }

    [Description("Longest an attempt may run, e.g. 30s or 2h.")]
    public Duration? Timeout { get; init; }

    [Description("Worker pool that serves this step; default the handler's own queue, or the container pool.")]
    public string? Pool { get; init; }

    [Description("Environments (PIPELINES_ENV) in which the step is skipped; its dependants still run.")]
    public IReadOnlyList<string> SkipInEnv { get; init; } = [];

    [JsonIgnore]
    public bool IsContainer => Handler is null;
}

[DefinitionKind("sidecar")]
public sealed class SidecarDefinition : ContainerDefinition;

public sealed class BuildDefinition : DefinitionNode
{
    [Required, Description("Folder sent to the Docker engine, relative to the definition file.")]
    public string Context { get; init; } = "";

    [Description("Dockerfile path within the context. Default Dockerfile.")]
    public string? Dockerfile { get; init; }

    public IReadOnlyDictionary<string, string> Args { get; init; } = new Dictionary<string, string>();
}

public sealed class RegistryCredentials : DefinitionNode
{
    [Required]
    public string Username { get; init; } = "";

    [Required, Description("Must be ${VAR} or ${secret:NAME}: the worker resolves it; it is never stored or sent.")]
    public SecretReference Password { get; init; } = new("");
}

public sealed class ResourceLimits : DefinitionNode
{
    [Description("Memory limit, e.g. 256m or 1g.")]
    public ByteSize? Memory { get; init; }

    [Description("CPU limit in cores, e.g. 0.5.")]
    public double? Cpus { get; init; }

    [Description("Most processes the container may have.")]
    public int? Pids { get; init; }
}

public enum MisfirePolicy
{
    FireOnce,
    Skip,
}

public enum OverlapPolicy
{
    Allow,
    Skip,
    Queue,
}

[DefinitionKind("schedule")]
public sealed class ScheduleDefinition : DefinitionNode
{
    [Required]
    public string Name { get; init; } = "";

    [Required, Description("Quartz cron with seconds (0 0 3 * * ?) or the 5-field form (0 3 * * *).")]
    public string Cron { get; init; } = "";

    [Description("IANA time zone, e.g. Europe/Berlin. Default UTC.")]
    public string Timezone { get; init; } = "UTC";

    [Description("Input of each run.")]
    public JsonObject? Payload { get; init; }

    public bool Enabled { get; init; } = true;

    [Description("When the scheduler was down at a fire time: fire_once (default) or skip.")]
    public MisfirePolicy Misfire { get; init; } = MisfirePolicy.FireOnce;

    [Description("When the previous run is still going: allow (default), skip or queue.")]
    public OverlapPolicy Overlap { get; init; } = OverlapPolicy.Allow;

    public DateTimeOffset? StartAt { get; init; }

    public DateTimeOffset? EndAt { get; init; }
}
