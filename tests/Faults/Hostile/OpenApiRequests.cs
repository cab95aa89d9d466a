using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using CsCheck;

namespace Pipelines.Faults.Hostile;

/// <summary>How a generated request authenticates.</summary>
internal enum Credential
{
    /// <summary>A key with the scope the operation needs.</summary>
    Right,
    /// <summary>A valid key without that scope.</summary>
    WrongScope,
    /// <summary>No Authorization header.</summary>
    None,
    /// <summary>A well-formed bearer token that is no key.</summary>
    UnknownKey,
    /// <summary>A malformed Authorization header.</summary>
    Garbage,
}

/// <summary>One generated request: what it targets, how it authenticates, and what was made wrong in it.</summary>
internal sealed record FuzzRequest(
    string Operation, string Method, string Path, string Query, Credential Credential, string? Authorization,
    string? Key, byte[]? Body, string? ContentType, string Mutation, string RequiredScope)
{
    public override string ToString() =>
        $"{Method} {Path}{(Query.Length > 0 ? "?" + Query : "")} [{Credential}, {Mutation}, body {Body?.Length ?? 0} B{(ContentType is null ? "" : ", " + ContentType)}]";
}

/// <summary>What the generator knows of the deployment: keys by scope, and real names to aim at.</summary>
internal sealed record FuzzTargets(
    IReadOnlyDictionary<string, string> KeysByScope, IReadOnlyList<string> Pipelines, IReadOnlyList<Guid> Runs,
    IReadOnlyList<string> Steps, IReadOnlyList<string> Schedules, IReadOnlyList<byte[]> Definitions);

/// <summary>
/// CsCheck generators of requests built from the API's OpenAPI document: every operation, its path,
/// query and header parameters and its body schema, filled with valid values, real names and ids —
/// and then made wrong: other types, oversize and deeply nested JSON, odd unicode, broken JSON, other
/// content types, and missing, unknown, malformed or wrong-scope keys.
/// </summary>
internal static class OpenApiRequests
{
    private static readonly string[] OddStrings =
    [
        "", " ", "\u0000", "\uFEFF", "\u202Etxt.exe", "e\u0301\u0301\u0301", "\uD83D\uDE00\uD83D\uDC4D", "\u200B\u200C\u200D", "ﾟ･✿ヾ╲(｡◕‿◕｡)╱✿･ﾟ",
        "../../etc/passwd", "%2e%2e%2f", "%00", "'; DROP TABLE runs; --", "${secret:API_TOKEN}", "{{7*7}}", "<script>alert(1)</script>",
        "NaN", "-1", "99999999999999999999", "1e400", "true", "null", "[]", "{}", "\\", "\"", "🏳️‍🌈", "𝕊𝕠𝕞𝕖", "한국어", "العربية",
    ];

    public static Gen<FuzzRequest> Create(JsonObject document, FuzzTargets targets)
    {
        var operations = new List<Gen<FuzzRequest>>();
        foreach (var (path, item) in document["paths"]!.AsObject())
        {
            foreach (var (method, operation) in item!.AsObject())
            {
                operations.Add(Operation(document, path, method.ToUpperInvariant(), operation!.AsObject(), targets));
            }
        }
        return Gen.OneOf([.. operations]);
    }

    /// <summary>The scope an operation needs, per docs/api.md.</summary>
    public static string ScopeOf(string method, string path) => path switch
    {
        _ when path.StartsWith("/api/v1/schedules", StringComparison.Ordinal) && method != "GET" => "schedules:write",
        _ when method == "POST" && (path == "/api/v1/runs" || path.EndsWith("/cancel", StringComparison.Ordinal) || path.EndsWith("/retry", StringComparison.Ordinal)) => "runs:write",
        _ => "runs:read",
    };

    private static Gen<FuzzRequest> Operation(JsonObject document, string path, string method, JsonObject operation, FuzzTargets targets)
    {
        var scope = ScopeOf(method, path);
        var parameters = operation["parameters"]?.AsArray().Select(p => p!.AsObject()).ToList() ?? [];
        var pathParameters = parameters.Where(p => p["in"]!.GetValue<string>() == "path").ToList();
        var queryParameters = parameters.Where(p => p["in"]!.GetValue<string>() == "query").ToList();
        var headerParameters = parameters.Where(p => p["in"]!.GetValue<string>() == "header").ToList();

        var pathGen = pathParameters.Aggregate(Gen.Const((Path: path, Mutated: false)), (gen, parameter) =>
            gen.SelectMany(current => PathValue(parameter, targets).Select(value => (
                current.Path.Replace("{" + parameter["name"]!.GetValue<string>() + "}", Uri.EscapeDataString(value.Value), StringComparison.Ordinal),
                current.Mutated || value.Mutated))));
        var queryGen = queryParameters.Aggregate(Gen.Const((Parts: new List<string>(), Mutated: false)), (gen, parameter) =>
            gen.SelectMany(current => QueryValue(document, parameter, targets).Select(value =>
            {
                var parts = new List<string>(current.Parts);
                if (value.Value is not null)
                {
                    parts.Add($"{Uri.EscapeDataString(parameter["name"]!.GetValue<string>())}={Uri.EscapeDataString(value.Value)}");
                }
                return (parts, current.Mutated || value.Mutated);
            })));
        var bodyGen = operation["requestBody"] is JsonObject body ? Body(document, body, targets) : Gen.Const<(byte[]?, string?, string)>((null, null, "no body"));
        var credentialGen = Gen.Frequency((60, Gen.Const(Credential.Right)), (10, Gen.Const(Credential.WrongScope)), (10, Gen.Const(Credential.None)), (10, Gen.Const(Credential.UnknownKey)), (10, Gen.Const(Credential.Garbage)));
        var garbageGen = Gen.OneOf(Gen.Const("Bearer"), Gen.Const("Bearer "), Gen.Const("Basic Zm9vOmJhcg=="), Gen.Const("bearer  pk_"), Gen.Const("Bearer " + new string('A', 9000)),
            Gen.OneOf(OddStrings).Select(s => "Bearer " + s), Gen.String[0, 40].Select(s => "Bearer " + s + " extra"));
        var headerGen = headerParameters.Count == 0 ? Gen.Const((string?)null) : Gen.OneOf<string?>(null, "k-1", new string('k', 250), "ключ", "a\tb");

        return Gen.Select(pathGen, queryGen, bodyGen, credentialGen, garbageGen, headerGen, (p, q, b, credential, garbage, header) =>
        {
            var (bytes, contentType, bodyMutation) = b;
            var key = credential switch
            {
                Credential.Right => targets.KeysByScope[scope],
                Credential.WrongScope => targets.KeysByScope.First(k => k.Key != scope && k.Key != "admin").Value,
                _ => null,
            };
            var authorization = credential switch
            {
                Credential.None => null,
                Credential.UnknownKey => "Bearer pk_" + Guid.NewGuid().ToString("N"),
                Credential.Garbage => garbage,
                _ => "Bearer " + key,
            };
            var mutation = string.Join("+", new[] { p.Mutated ? "path" : null, q.Mutated ? "query" : null, bodyMutation == "valid" || bodyMutation == "no body" ? null : bodyMutation }.OfType<string>().DefaultIfEmpty("valid"));
            return new FuzzRequest($"{method} {path}", method, p.Path, string.Join('&', q.Parts), credential, authorization, header, bytes, contentType, mutation, scope);
        });
    }

    private static Gen<(string Value, bool Mutated)> PathValue(JsonObject parameter, FuzzTargets targets)
    {
        var name = parameter["name"]!.GetValue<string>();
        Gen<string> valid = name switch
        {
            "runId" => targets.Runs.Count > 0 ? Gen.OneOf(Gen.OneOf([.. targets.Runs]), Gen.Guid).Select(g => g.ToString()) : Gen.Guid.Select(g => g.ToString()),
            "step" => Gen.OneOf([.. targets.Steps]),
            "attempt" => Gen.Int[1, 3].Select(i => i.ToString(CultureInfo.InvariantCulture)),
            "pipeline" => Gen.OneOf([.. targets.Pipelines]),
            _ => Gen.OneOf([.. targets.Schedules.Select(s => s.Split('/')[^1]), "nightly"]),
        };
        var wrong = Gen.OneOf(Gen.OneOf(OddStrings), Gen.String[1, 300], Gen.Int.Select(i => i.ToString(CultureInfo.InvariantCulture)), Gen.Const(new string('x', 5000)));
        return Gen.Frequency((70, valid.Select(v => (v, false))), (30, wrong.Select(v => (v, true))));
    }

    private static Gen<(string? Value, bool Mutated)> QueryValue(JsonObject document, JsonObject parameter, FuzzTargets targets)
    {
        var schema = Resolve(document, parameter["schema"]?.AsObject() ?? []);
        var name = parameter["name"]!.GetValue<string>();
        Gen<string> valid = name switch
        {
            "pipeline" => Gen.OneOf([.. targets.Pipelines]),
            "state" => Gen.OneOf("pending", "running", "succeeded", "failed", "cancelled", "failed,running"),
            "from" or "to" => Gen.Int[-100_000, 100_000].Select(s => DateTimeOffset.UtcNow.AddSeconds(s).ToString("O", CultureInfo.InvariantCulture)),
            "limit" => Gen.Int[1, 200].Select(i => i.ToString(CultureInfo.InvariantCulture)),
            "schedule" => Gen.OneOf([.. targets.Schedules]),
            _ => Types(schema).Contains("integer") ? Gen.Int[0, 10].Select(i => i.ToString(CultureInfo.InvariantCulture))
                : Types(schema).Contains("boolean") ? Gen.OneOf("true", "false")
                : Gen.String[0, 20],
        };
        var wrong = Gen.OneOf(Gen.OneOf(OddStrings), Gen.Const(new string('9', 400)), Gen.String[0, 2000], Gen.Const("-2147483649"), Gen.Const("2026-13-45T99:99:99Z"));
        return Gen.Frequency((40, Gen.Const(((string?)null, false))), (40, valid.Select(v => ((string?)v, false))), (20, wrong.Select(v => ((string?)v, true))));
    }

    private static Gen<(byte[]? Body, string? ContentType, string Mutation)> Body(JsonObject document, JsonObject requestBody, FuzzTargets targets)
    {
        var content = requestBody["content"]!.AsObject();
        if (!content.ContainsKey("application/json") || content.ContainsKey("application/yaml"))
        {
            // A definition file to validate: malformed ones from the corpus, random text, or a huge one.
            return Gen.Frequency(
                (60, Gen.OneOf([.. targets.Definitions]).Select(d => ((byte[]?)d, (string?)"application/yaml", "malformed definition"))),
                (20, Gen.String[0, 3000].Select(s => ((byte[]?)Encoding.UTF8.GetBytes(s), (string?)"text/plain", "random text"))),
                (10, Gen.Const(((byte[]?)new byte[2 * 1024 * 1024], (string?)"application/yaml", "oversize"))),
                (10, Gen.Const(((byte[]?)null, (string?)null, "no body"))));
        }
        var schema = content["application/json"]!["schema"]!.AsObject();
        var valid = Json(document, schema, 0, targets).Select(node => Encoding.UTF8.GetBytes(node?.ToJsonString() ?? "null"));
        return Gen.Frequency(
            (50, valid.Select(b => ((byte[]?)b, (string?)"application/json", "valid"))),
            (8, Json(document, schema, 0, targets).Select(node => ((byte[]?)Encoding.UTF8.GetBytes(WithExtraField(node)), (string?)"application/json", "unknown field"))),
            (8, Gen.OneOf("[]", "42", "\"text\"", "true", "{\"pipeline\":42}", "{\"pipeline\":[\"a\"]}", "{\"payload\":\"x\"}", "{\"cron\":{}}")
                .Select(s => ((byte[]?)Encoding.UTF8.GetBytes(s), (string?)"application/json", "wrong types"))),
            (6, Gen.Int[20, 20_000].Select(depth => ((byte[]?)Encoding.UTF8.GetBytes(Deep(depth)), (string?)"application/json", "deep JSON"))),
            (4, Gen.Int[1, 3].Select(mb => ((byte[]?)Encoding.UTF8.GetBytes($"{{\"pipeline\":\"{new string('a', mb * 1024 * 1024)}\"}}"), (string?)"application/json", "oversize JSON"))),
            (8, valid.Select(b => ((byte[]?)b[..Math.Max(0, b.Length / 2)], (string?)"application/json", "truncated JSON"))),
            (8, Gen.OneOf(OddStrings).Select(s => ((byte[]?)Encoding.UTF8.GetBytes($"{{\"pipeline\":{System.Text.Json.JsonSerializer.Serialize(s)},\"payload\":{{\"k\":\"\\ud800\\udfff\\ud800\"}}}}"), (string?)"application/json", "odd unicode"))),
            (4, Gen.Const(((byte[]?)new byte[] { 0xFF, 0xFE, 0x7B, 0x00 }, (string?)"application/json", "not UTF-8"))),
            (4, valid.Select(b => ((byte[]?)b, (string?)"text/plain", "wrong content type"))));
    }

    private static Gen<JsonNode?> Json(JsonObject document, JsonObject schema, int depth, FuzzTargets targets)
    {
        schema = Resolve(document, schema);
        if (schema["oneOf"] is JsonArray options)
        {
            return Gen.OneOf([.. options.Select(o => Json(document, o!.AsObject(), depth + 1, targets))]);
        }
        if (schema["enum"] is JsonArray values)
        {
            return Gen.OneOf([.. values.Select(v => v?.DeepClone())]);
        }
        var types = Types(schema);
        if (types.Count == 0 || depth > 6)
        {
            return AnyJson(depth);
        }
        return Gen.OneOf([.. types.Select(type => type switch
        {
            "null" => Gen.Const((JsonNode?)null),
            "string" => StringValue(schema, targets).Select(s => (JsonNode?)JsonValue.Create(s)),
            "integer" => Gen.Int[-10, 1000].Select(i => (JsonNode?)JsonValue.Create(i)),
            "number" => Gen.Double.Select(d => (JsonNode?)(double.IsFinite(d) ? JsonValue.Create(d) : JsonValue.Create(0))),
            "boolean" => Gen.Bool.Select(b => (JsonNode?)JsonValue.Create(b)),
            "array" => Json(document, schema["items"]?.AsObject() ?? [], depth + 1, targets).Array[0, 4].Select(items => (JsonNode?)new JsonArray([.. items])),
            _ => Object(document, schema, depth, targets),
        })]);
    }

    private static Gen<JsonNode?> Object(JsonObject document, JsonObject schema, int depth, FuzzTargets targets)
    {
        var properties = schema["properties"]?.AsObject().ToList() ?? [];
        if (properties.Count == 0)
        {
            return AnyJson(depth).Select(n => (JsonNode?)new JsonObject { ["k"] = n });
        }
        return properties.Aggregate(Gen.Const(new List<(string, JsonNode?)>()), (gen, property) =>
                gen.SelectMany(list => Gen.Frequency((80, Json(document, property.Value!.AsObject(), depth + 1, targets).Select(v => (true, v))), (20, Gen.Const((false, (JsonNode?)null))))
                    .Select(value =>
                    {
                        var next = new List<(string, JsonNode?)>(list);
                        if (value.Item1)
                        {
                            next.Add((property.Key, value.Item2));
                        }
                        return next;
                    })))
            .Select(fields =>
            {
                var json = new JsonObject();
                foreach (var (name, value) in fields)
                {
                    json[name] = value;
                }
                return (JsonNode?)json;
            });
    }

    private static Gen<string> StringValue(JsonObject schema, FuzzTargets targets)
    {
        var description = schema["description"]?.GetValue<string>() ?? "";
        var typical = description.Contains("cron", StringComparison.OrdinalIgnoreCase) ? Gen.OneOf("0 3 * * *", "0 0 3 * * ?", "*/5 * * * * ?", "61 * * * *", "@daily")
            : description.Contains("time zone", StringComparison.OrdinalIgnoreCase) ? Gen.OneOf("UTC", "Europe/Berlin", "Mars/Olympus", "")
            : description.Contains("pipeline", StringComparison.OrdinalIgnoreCase) ? Gen.OneOf([.. targets.Pipelines, "no-such-pipeline"])
            : Gen.OneOf([.. targets.Schedules.Select(s => s.Split('/')[^1]), "nightly", "x"]);
        return Gen.Frequency((60, typical), (25, Gen.OneOf(OddStrings)), (10, Gen.String[0, 200]), (5, Gen.Const(new string('z', 100_000))));
    }

    private static Gen<JsonNode?> AnyJson(int depth) => Gen.Frequency(
        (30, Gen.Int.Select(i => (JsonNode?)JsonValue.Create(i))),
        (30, Gen.OneOf(OddStrings).Select(s => (JsonNode?)JsonValue.Create(s))),
        (10, Gen.Const((JsonNode?)null)),
        (depth > 4 ? 0 : 15, Gen.Int[0, 3].Select(n => (JsonNode?)new JsonArray([.. Enumerable.Range(0, n).Select(i => (JsonNode?)JsonValue.Create(i))]))),
        (depth > 4 ? 0 : 15, Gen.String[1, 10].Select(k => (JsonNode?)new JsonObject { [k] = JsonValue.Create(depth) })));

    private static string WithExtraField(JsonNode? node) => node is JsonObject json
        ? new JsonObject(json.Select(p => KeyValuePair.Create(p.Key, p.Value?.DeepClone()))) { ["unexpected_field"] = "x" }.ToJsonString()
        : "{\"unexpected_field\":1}";

    private static string Deep(int depth) =>
        "{\"pipeline\":\"fuzz\",\"payload\":" + string.Concat(Enumerable.Repeat("{\"a\":", depth)) + "1" + new string('}', depth) + "}";

    private static JsonObject Resolve(JsonObject document, JsonObject schema)
    {
        while (schema["$ref"]?.GetValue<string>() is { } reference)
        {
            var name = reference.Split('/')[^1];
            schema = document["components"]!["schemas"]![name]!.AsObject();
        }
        return schema;
    }

    private static List<string> Types(JsonObject schema) => schema["type"] switch
    {
        JsonArray many => [.. many.Select(t => t!.GetValue<string>())],
        JsonValue one => [one.GetValue<string>()],
        _ => [],
    };
}
