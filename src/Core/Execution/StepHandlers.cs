using System.Text.Json.Nodes;

namespace Pipelines.Core.Execution;

/// <summary>
/// Application code of a handler step. The returned output is stored with the step and passed to
/// the steps that depend on it (return null for none). Throw to fail the attempt; the step is
/// retried per its <c>retry</c> policy.
/// </summary>
public interface IStepHandler
{
    Task<JsonNode?> HandleAsync(StepContext context);
}

/// <summary>
/// A handler whose effect can be undone. When a run fails, the compensations of its completed
/// steps run in reverse dependency order across the whole pipeline, parallel branches included.
/// </summary>
public interface ICompensatingStepHandler : IStepHandler
{
    /// <summary><paramref name="output"/> is what <see cref="IStepHandler.HandleAsync"/> returned for this run.</summary>
    Task CompensateAsync(StepContext context, JsonNode? output);
}

/// <summary>Runs one attempt of a step of some kind (handler, container).</summary>
public interface IStepExecutor
{
    bool CanExecute(Definitions.StepDefinition definition);

    Task<JsonNode?> ExecuteAsync(StepContext context);

    /// <summary>
    /// Undoes a completed step after its run failed. Returns false when the step has no
    /// compensation, so the step stays succeeded (and a retry of the run reuses its output).
    /// </summary>
    Task<bool> CompensateAsync(StepContext context, JsonNode? output);
}

/// <summary>A step attempt failed for a reason the executor can state (exit code, timeout, policy).</summary>
public class StepFailedException(string message, string? kind = null, Exception? inner = null) : Exception(message, inner)
{
    /// <summary>Short machine-readable cause, e.g. <c>timeout</c>, <c>exit-code</c>, <c>oom</c>, <c>policy</c>.</summary>
    public string Kind { get; } = kind ?? "error";

    /// <summary>False when retrying cannot help (a refused sandbox policy, a missing handler).</summary>
    public bool Retryable { get; init; } = true;
}
