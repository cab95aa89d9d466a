using Pipelines.Core.Definitions;
using Pipelines.Core.Execution;

namespace Pipelines.Workers.Containers;

/// <summary>
/// Resolves the <c>${secret:NAME}</c> references of one step attempt on this worker; a secret the
/// worker lacks fails the attempt. Every value handed out is masked by <see cref="Mask"/>, so that
/// pull errors, engine answers and log lines never carry it.
/// </summary>
internal sealed class StepSecrets(RevealedSecrets secrets, string step)
{
    /// <summary>
    /// <paramref name="text"/> with each <c>${secret:NAME}</c> replaced by its value;
    /// <paramref name="field"/> (<c>env.TOKEN</c>) names where it comes from in the error when the worker lacks a secret.
    /// </summary>
    public string Substitute(string text, string field) => SecretText.Resolve(text, name => Resolve(name, field));

    /// <summary>The value of secret <paramref name="name"/>; fails the attempt (not retryable) when this worker has none.</summary>
    public string Resolve(string name, string field) =>
        secrets.Resolve(name) ?? throw new StepFailedException(
            $"step '{step}' {field} needs secret '{name}', which this worker does not have", "secret")
        { Retryable = false };

    public string Mask(string text) => secrets.Mask(text);
}
