using System.Text.Json.Nodes;

namespace Pipelines.Core.Execution;

/// <summary>
/// The secrets one step attempt has resolved, so that whatever the attempt sends out — its output,
/// its error, its log lines — can be masked: a step that echoes or returns its password does not get
/// it stored, sent in a message or shown by the API.
/// </summary>
public sealed class RevealedSecrets(ISecretResolver resolver) : ISecretResolver
{
    public const string Masked = "***";
    private readonly Lock _gate = new();
    // Replaced, never changed in place: log lines are masked while later secrets are resolved.
    private string[] _values = [];

    public string? Resolve(string name)
    {
        var value = resolver.Resolve(name);
        if (!string.IsNullOrEmpty(value))
        {
            lock (_gate)
            {
                if (!_values.Contains(value, StringComparer.Ordinal))
                {
                    // Longest first, so that a secret containing another is masked whole.
                    _values = [.. _values.Append(value).OrderByDescending(v => v.Length)];
                }
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

    /// <summary>
    /// <paramref name="node"/> with every string value and property name masked. The JSON is walked
    /// rather than its text replaced, so that a secret that JSON escapes (a quote, a backslash) is
    /// still found and the result stays valid JSON.
    /// </summary>
    public JsonNode? Mask(JsonNode? node)
    {
        if (node is null || Volatile.Read(ref _values).Length == 0)
        {
            return node;
        }
        return node switch
        {
            JsonObject obj => new JsonObject(obj.Select(p => KeyValuePair.Create(Mask(p.Key), Mask(p.Value)))),
            JsonArray array => new JsonArray([.. array.Select(Mask)]),
            JsonValue value when value.TryGetValue<string>(out var text) => JsonValue.Create(Mask(text)),
            _ => node.DeepClone(),
        };
    }
}
