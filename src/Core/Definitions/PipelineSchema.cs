using System.ComponentModel;
using System.ComponentModel.DataAnnotations;
using System.Reflection;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Schema;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;

namespace Pipelines.Core.Definitions;

/// <summary>
/// The JSON Schema of the definition format, generated from the model so that it cannot drift from
/// what the loader accepts. Editors use it for completion (YAML language server, VS Code).
/// </summary>
public static class PipelineSchema
{
    public const string Id = "https://pipelines.dev/schema/pipelines.schema.json";

    private static readonly JsonSerializerOptions ModelOptions = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower) },
        TypeInfoResolver = new DefaultJsonTypeInfoResolver(),
        RespectNullableAnnotations = true,
    };

    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static string Generate()
    {
        var schema = ModelOptions.GetJsonSchemaAsNode(typeof(PipelineFileDefinition), new JsonSchemaExporterOptions
        {
            TreatNullObliviousAsNonNullable = true,
            TransformSchemaNode = Transform,
        });
        var root = new JsonObject
        {
            ["$schema"] = "https://json-schema.org/draft/2020-12/schema",
            ["$id"] = Id,
            ["title"] = "Pipelines definition file",
        };
        foreach (var (key, value) in schema.AsObject().ToList())
        {
            schema.AsObject().Remove(key);
            root[key] = value;
        }
        return root.ToJsonString(Indented) + "\n";
    }

    private static JsonNode Transform(JsonSchemaExporterContext context, JsonNode schema)
    {
        var type = Nullable.GetUnderlyingType(context.TypeInfo.Type) ?? context.TypeInfo.Type;
        var replacement = Special(type);
        if (replacement is not null)
        {
            schema = replacement;
        }
        if (schema is not JsonObject obj)
        {
            return schema;
        }
        if (context.PropertyInfo?.AttributeProvider is MemberInfo member)
        {
            if (member.GetCustomAttribute<DescriptionAttribute>() is { } description)
            {
                obj["description"] = description.Description;
            }
            if (member.GetCustomAttribute<MinLengthAttribute>() is { } minimum)
            {
                obj[context.TypeInfo.Kind == JsonTypeInfoKind.Dictionary ? "minProperties" : "minItems"] = minimum.Length;
            }
        }
        if (replacement is null && typeof(DefinitionNode).IsAssignableFrom(type) && obj["properties"] is JsonObject properties)
        {
            obj["additionalProperties"] = false;
            obj["patternProperties"] = Extensions();
            var required = type.GetProperties()
                .Where(p => p.GetCustomAttribute<RequiredAttribute>() is not null)
                .Select(p => JsonNamingPolicy.SnakeCaseLower.ConvertName(p.Name))
                .ToArray();
            obj.Remove("required");
            if (required.Length > 0)
            {
                obj["required"] = new JsonArray([.. required.Select(key => (JsonNode)key)]);
            }
            foreach (var (key, property) in properties)
            {
                if (property is JsonObject optional && !required.Contains(key))
                {
                    AllowEmpty(optional);
                }
            }
        }
        return schema;
    }

    /// <summary>Extension keys (<c>x-...</c>) hold YAML anchors for reuse; the loader skips them in every mapping of fixed keys.</summary>
    private static JsonObject Extensions() => new() { ["^x-"] = new JsonObject() };

    /// <summary>Optional keys may be left empty in YAML (<c>description:</c>), which reads as null: "not given".</summary>
    private static void AllowEmpty(JsonObject property)
    {
        if (property["type"] is JsonValue single)
        {
            property["type"] = new JsonArray(single.GetValue<string>(), "null");
        }
        else if (property["type"] is JsonArray types && !types.Any(t => t?.GetValue<string>() == "null"))
        {
            types.Add("null");
        }
        else if (property["enum"] is JsonArray members && !members.Any(m => m is null))
        {
            members.Add(null);
        }
    }

    /// <summary>
    /// A value's pattern, or any text with a <c>${...}</c> in it: variables are substituted before the value is
    /// read, so <c>timeout: ${STEP_TIMEOUT:-30s}</c> is valid.
    /// </summary>
    private static string OrVariable(string pattern) => $"(?:{pattern})|\\$\\{{";

    private static JsonObject? Special(Type type)
    {
        if (type == typeof(Duration))
        {
            return new JsonObject { ["type"] = new JsonArray("string", "null"), ["pattern"] = OrVariable(Duration.Pattern), ["examples"] = new JsonArray("500ms", "30s", "10m", "1h") };
        }
        if (type == typeof(ByteSize))
        {
            return new JsonObject { ["type"] = new JsonArray("string", "integer", "null"), ["pattern"] = OrVariable(ByteSize.Pattern), ["examples"] = new JsonArray("256m", "1g") };
        }
        if (type == typeof(CommandLine))
        {
            return new JsonObject
            {
                ["type"] = new JsonArray("string", "array", "null"),
                ["items"] = new JsonObject { ["type"] = "string" },
            };
        }
        if (type == typeof(SecretReference))
        {
            return new JsonObject { ["type"] = "string", ["pattern"] = "^\\$\\{(secret:)?[A-Za-z_][A-Za-z0-9_]*\\}$" };
        }
        if (type == typeof(VolumeMount))
        {
            return new JsonObject
            {
                ["oneOf"] = new JsonArray(
                    new JsonObject { ["type"] = "string", ["pattern"] = OrVariable("^[^:]+:[^:]+(:(ro|rw))?$") },
                    new JsonObject
                    {
                        ["type"] = "object",
                        ["properties"] = new JsonObject
                        {
                            ["source"] = new JsonObject { ["type"] = "string" },
                            ["target"] = new JsonObject { ["type"] = "string" },
                            ["read_only"] = new JsonObject { ["type"] = "boolean" },
                        },
                        ["required"] = new JsonArray("source", "target"),
                        ["additionalProperties"] = false,
                        ["patternProperties"] = Extensions(),
                    }),
            };
        }
        if (type == typeof(JsonNode))
        {
            return new JsonObject();
        }
        return null;
    }
}
