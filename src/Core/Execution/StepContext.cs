using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using Pipelines.Core.Definitions;

namespace Pipelines.Core.Execution;

/// <summary>Everything a step sees while it runs.</summary>
public sealed class StepContext
{
    public required Guid RunId { get; init; }
    public required string Pipeline { get; init; }
    public required string Step { get; init; }
    /// <summary>The run's input payload (what Celery-style pipelines call the <c>event</c>).</summary>
    public required JsonObject Event { get; init; }
    /// <summary>Outputs of the steps this one depends on, by step name (null for a step without output).</summary>
    public required IReadOnlyDictionary<string, JsonNode?> Inputs { get; init; }
    /// <summary>1 for the first try; every retry or re-execution after a crash counts up.</summary>
    public required int Attempt { get; init; }
    public required ILogger Logger { get; init; }
    /// <summary>Cancelled when the run is cancelled, the step times out or the worker gives the step back.</summary>
    public required CancellationToken CancellationToken { get; init; }
    public required StepDefinition Definition { get; init; }
    /// <summary>Where the step's log lines go (kept per attempt in the run store).</summary>
    public required IStepLog Log { get; init; }
    /// <summary>
    /// Resolves <c>${secret:NAME}</c> references on the worker, at execution. What it resolves is
    /// masked in the step's output, error and log lines.
    /// </summary>
    public required RevealedSecrets Secrets { get; init; }

    /// <summary>Facts about this attempt worth keeping (e.g. the image digest a container step ran).</summary>
    public IDictionary<string, string> Details { get; } = new Dictionary<string, string>(StringComparer.Ordinal);

    /// <summary>The output of dependency <paramref name="step"/>, deserialized.</summary>
    public T? Input<T>(string step) =>
        Inputs.TryGetValue(step, out var node) && node is not null ? node.Deserialize<T>(JsonSerializerOptions.Web) : default;
}

/// <summary>The log of one step attempt: kept in the run store, readable while the step runs.</summary>
public interface IStepLog
{
    void Write(string stream, string line, DateTimeOffset? timestamp = null);
}

/// <summary>Looks up secret values by name on the worker that needs them; values never leave it.</summary>
public interface ISecretResolver
{
    /// <summary>The secret's value, or null when the worker has no such secret.</summary>
    string? Resolve(string name);
}
