using Pipelines.Core.Definitions;
using Pipelines.Core.Execution;

namespace Pipelines.Workers.Containers;

/// <summary>
/// Resolves the <c>${secret:NAME}</c> references of one step attempt on this worker and remembers
/// every value it handed out, so that <see cref="Mask"/> can blank them in log lines and errors:
/// a step that echoes its password does not get it stored.
/// </summary>
internal sealed class StepSecrets(ISecretResolver resolver, string step)
{
    private const string Masked = "***";
    private readonly Lock _gate = new();
    // Replaced, never changed in place: log pumps mask lines while a later container's secrets are resolved.
    private string[] _values = [];

    /// <summary>
    /// <paramref name="text"/> with each <c>${secret:NAME}</c> replaced by its value;
    /// <paramref name="field"/> (<c>env.TOKEN</c>) names where it comes from in the error when the worker lacks a secret.
    /// </summary>
    public string Substitute(string text, string field) => SecretText.Resolve(text, name => Resolve(name, field));

    /// <summary>The value of secret <paramref name="name"/>; fails the attempt (not retryable) when this worker has none.</summary>
    public string Resolve(string name, string field)
    {
        var value = resolver.Resolve(name);
        if (value is null)
        {
            throw new StepFailedException(
                $"step '{step}' {field} needs secret '{name}', which this worker does not have", "secret")
            { Retryable = false };
        }
        lock (_gate)
        {
            if (value.Length > 0 && !_values.Contains(value, StringComparer.Ordinal))
            {
                // Longest first, so a secret containing another is masked whole.
                _values = [.. _values.Append(value).OrderByDescending(v => v.Length)];
            }
        }
        return value;
    }

    public string Mask(string text)
    {
        foreach (var value in Volatile.Read(ref _values))
        {
            text = text.Replace(value, Masked, StringComparison.Ordinal);
        }
        return text;
    }
}
