using System.Globalization;
using Pipelines.Core.Definitions;
using Pipelines.Core.Execution;

namespace Pipelines.Workers.Containers;

/// <summary>
/// Labels on every container this worker creates. They are how a container is found again: the
/// orphan reaper, a redelivered step and a cancelled run select containers by them, and a container
/// without <see cref="Managed"/> is never touched.
/// </summary>
public static class ContainerLabels
{
    /// <summary>Labels starting with this are reserved; a definition may not set them.</summary>
    public const string Prefix = "pipelines.";
    public const string Managed = "pipelines.managed";
    public const string Run = "pipelines.run";
    public const string Pipeline = "pipelines.pipeline";
    public const string Step = "pipelines.step";
    public const string Attempt = "pipelines.attempt";
    public const string Worker = "pipelines.worker";
    /// <summary>One value per worker process, so the start-up reaper spares containers of the process that runs it.</summary>
    public const string WorkerInstance = "pipelines.worker-instance";
    /// <summary><c>step</c>, <c>sidecar</c>, or <c>network</c> for a pre-started network namespace holder (<see cref="NetworkPool"/>).</summary>
    public const string Role = "pipelines.role";
    public const string Sidecar = "pipelines.sidecar";

    internal static Dictionary<string, string> For(StepContext context, ContainerEngine engine, ContainerDefinition definition)
    {
        var labels = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (key, value) in definition.Labels)
        {
            labels[key] = value;
        }
        labels[Managed] = "true";
        labels[Run] = context.RunId.ToString();
        labels[Pipeline] = context.Pipeline;
        labels[Step] = context.Step;
        labels[Attempt] = context.Attempt.ToString(CultureInfo.InvariantCulture);
        labels[Worker] = engine.Options.WorkerId;
        labels[WorkerInstance] = engine.InstanceId;
        labels[Role] = definition is SidecarDefinition ? "sidecar" : "step";
        if (definition is SidecarDefinition sidecar)
        {
            labels[Sidecar] = sidecar.Name;
        }
        return labels;
    }

    /// <summary>Labels of a network namespace holder: it belongs to this worker process, and to no run until a step joins it.</summary>
    internal static Dictionary<string, string> ForNamespaceHolder(ContainerEngine engine) => new(StringComparer.Ordinal)
    {
        [Managed] = "true",
        [Worker] = engine.Options.WorkerId,
        [WorkerInstance] = engine.InstanceId,
        [Role] = "network",
    };

    /// <summary>A Docker list filter matching containers that carry all of <paramref name="labels"/> and are ours.</summary>
    internal static IDictionary<string, IDictionary<string, bool>> Filter(params (string Key, string Value)[] labels)
    {
        var values = new Dictionary<string, bool>(StringComparer.Ordinal) { [$"{Managed}=true"] = true };
        foreach (var (key, value) in labels)
        {
            values[$"{key}={value}"] = true;
        }
        return new Dictionary<string, IDictionary<string, bool>>(StringComparer.Ordinal) { ["label"] = values };
    }
}
