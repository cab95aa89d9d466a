using System.Text.Json;
using System.Text.Json.Nodes;

namespace Pipelines.Client;

internal static class Payloads
{
    /// <summary>A run payload as a JSON object: given as one, or serialized from any object (web defaults: camelCase names).</summary>
    public static JsonObject? ToObject(object? payload) => payload switch
    {
        null => null,
        JsonObject json => json,
        _ => JsonSerializer.SerializeToNode(payload, JsonSerializerOptions.Web) as JsonObject
            ?? throw new ArgumentException("the payload must serialize to a JSON object", nameof(payload)),
    };
}
