using System.Text.Json;
using System.Text.Json.Serialization;

namespace Pipelines.Client;

/// <summary>
/// How the API writes and reads JSON: snake_case names as in the definition file (<c>depends_on</c>,
/// <c>start_at</c>), enums as snake_case strings (<c>fire_once</c>), nulls left out.
/// </summary>
public static class PipelinesJson
{
    /// <summary>The settings the client reads responses with; unknown fields are ignored, so newer servers work.</summary>
    public static JsonSerializerOptions Options { get; } = Configure(new JsonSerializerOptions(JsonSerializerDefaults.Web));

    /// <summary>Applies the API's conventions to <paramref name="options"/> (the server's are these and stricter).</summary>
    public static JsonSerializerOptions Configure(JsonSerializerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower;
        options.DictionaryKeyPolicy = null;
        options.Converters.Add(new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower, allowIntegerValues: false));
        options.DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull;
        return options;
    }
}
