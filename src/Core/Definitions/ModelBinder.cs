using System.Collections.Concurrent;
using System.ComponentModel.DataAnnotations;
using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Reflection;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Pipelines.Core.Definitions.Yaml;

namespace Pipelines.Core.Definitions;

/// <summary>
/// Binds a <see cref="YamlTreeNode"/> tree to the definition model by reflection over the model's
/// properties (snake_case keys). Every problem becomes a <see cref="DefinitionError"/> at the
/// offending key or value and binding goes on, so one pass reports everything. Messages name keys
/// and objects in the file's <see cref="Dialect"/>.
/// </summary>
internal sealed class ModelBinder(string file, string source, VariableResolver variables, List<DefinitionError> errors, string baseDirectory, Dialect dialect)
{
    private static readonly ConcurrentDictionary<Type, ModelShape> Shapes = new();

    /// <summary>Binds the root of a file.</summary>
    public T? BindRoot<T>(YamlTreeNode node) where T : DefinitionNode =>
        (T?)BindObject(typeof(T), node, new Scope(null, "", null, dialect), nameFromKey: null);

    /// <summary>The error label and key path prefix for what is being bound, and the object that records positions.</summary>
    private sealed record Scope(DefinitionNode? Owner, string PathPrefix, string? Label, Dialect Dialect)
    {
        /// <summary>A key of this scope as the file names it, quoted: <c>'retry.attempts'</c>.</summary>
        public string Quote(string key) => $"'{Dialect.Key(PathPrefix + key)}'";

        public string Describe(string key) => Prefix + Quote(key);

        public string Prefix => Label is null ? "" : Label + ": ";
    }

    private void Error(SourcePosition at, string message) => errors.Add(new DefinitionError(file, at, message));

    private DefinitionNode? BindObject(Type type, YamlTreeNode node, Scope parent, string? nameFromKey)
    {
        if (node is not YamlTreeMapping mapping)
        {
            return null;
        }
        var shape = Shapes.GetOrAdd(type, t => new ModelShape(t));
        var instance = (DefinitionNode)Activator.CreateInstance(type)!;
        instance.Source = new SourceMap(file, mapping.Start);
        if (instance is INamedByKey named && nameFromKey is not null)
        {
            named.Name = nameFromKey;
        }
        // Named objects (pipeline, step, sidecar, schedule, parameter) label their errors; the others
        // (retry, resources, ...) speak for the object they belong to, under their key path.
        Scope scope;
        if (shape.IsNamed)
        {
            var name = nameFromKey ?? (mapping.Find("name")?.Value as YamlTreeScalar)?.Value;
            scope = new Scope(instance, "", name is null ? $"unnamed {dialect.Noun(shape.Kind)}" : dialect.Label(shape.Kind, name), dialect);
        }
        else
        {
            scope = parent.Owner is null ? new Scope(instance, "", null, dialect) : parent;
        }

        var suggested = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (key, value) in mapping.Entries)
        {
            if (IsExtension(key))
            {
                continue;
            }
            if (!shape.Properties.TryGetValue(key.Value, out var property))
            {
                var where = scope.Label is null ? "" : $" in {scope.Label}";
                var suggestion = Suggestions.Closest(key.Value, shape.Properties.Keys);
                Error(key.Start, $"unknown key {scope.Quote(key.Value)}{where}" + Suggestions.DidYouMean(suggestion));
                if (suggestion is not null)
                {
                    suggested.Add(suggestion);
                }
                continue;
            }
            if (value is YamlTreeScalar { IsNull: true })
            {
                continue; // an empty value means "not given": the default stays, and validation sees no key
            }
            instance.Source.RecordKey(key.Value, key.Start);
            instance.Source.RecordValue(key.Value, value.Start);
            if (scope.Owner != instance)
            {
                scope.Owner!.Source.RecordKey(scope.PathPrefix + key.Value, key.Start);
                scope.Owner.Source.RecordValue(scope.PathPrefix + key.Value, value.Start);
            }
            if (Bind(property.Info.PropertyType, value, scope, key.Value, property) is { } bound)
            {
                property.Info.SetValue(instance, bound);
            }
        }
        // A misspelt required key was reported with its "did you mean" already.
        foreach (var required in shape.Required.Where(r => !suggested.Contains(r)))
        {
            switch (mapping.Find(required))
            {
                case null:
                    Error(mapping.Start, $"{scope.Prefix}missing required key {scope.Quote(required)}");
                    break;
                case { Value: YamlTreeScalar { IsNull: true } } empty:
                    Error(empty.Key.Start, $"{scope.Describe(required)} is required but has no value");
                    break;
            }
        }
        return instance;
    }

    /// <summary>
    /// Extension keys (<c>x-...</c>) hold YAML anchors for reuse, as in docker-compose: every mapping of fixed
    /// keys skips them; mappings of names (pipelines, parameters, env, labels) do not.
    /// </summary>
    private static bool IsExtension(YamlTreeScalar key) => key.Value.StartsWith("x-", StringComparison.Ordinal);

    private object? Bind(Type type, YamlTreeNode node, Scope scope, string key, ModelProperty? property)
    {
        var target = Nullable.GetUnderlyingType(type) ?? type;
        if (target == typeof(string))
        {
            return Text(node, scope, key, property?.AllowsSecrets ?? false);
        }
        if (target == typeof(bool))
        {
            return Scalar(node, scope, key, "true or false", s => s.ToLowerInvariant() switch
            {
                "true" => true,
                "false" => false,
                _ => null,
            });
        }
        if (target == typeof(int))
        {
            return Scalar(node, scope, key, "a whole number", s => int.TryParse(s, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var i) ? i : null);
        }
        if (target == typeof(double))
        {
            return Scalar(node, scope, key, "a number", s => double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) && double.IsFinite(d) ? d : null);
        }
        if (target == typeof(Duration))
        {
            return Scalar(node, scope, key, "a duration such as 500ms, 30s, 10m or 1h", s => Duration.TryParse(s, out var d) ? d : null);
        }
        if (target == typeof(ByteSize))
        {
            return Scalar(node, scope, key, "a size such as 512m or 1g", s => ByteSize.TryParse(s, out var b) ? b : null);
        }
        if (target == typeof(DateTimeOffset))
        {
            return Scalar(node, scope, key, "a date and time such as 2026-01-31T08:00:00Z",
                s => DateTimeOffset.TryParse(s, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var t) ? t : null);
        }
        if (target.IsEnum)
        {
            return Enum(target, node, scope, key);
        }
        if (target == typeof(CommandLine))
        {
            return Command(node, scope, key);
        }
        if (target == typeof(VolumeMount))
        {
            return Volume(node, scope, key);
        }
        if (target == typeof(SecretReference))
        {
            return Secret(node, scope, key);
        }
        if (target == typeof(JsonObject) || target == typeof(JsonNode))
        {
            if (target == typeof(JsonObject) && node is not YamlTreeMapping)
            {
                return WrongKind(node, scope, key, "a mapping");
            }
            return Json(node, scope, key);
        }
        if (target.IsGenericType && target.GetGenericTypeDefinition() is var generic
            && (generic == typeof(IReadOnlyList<>) || generic == typeof(List<>)))
        {
            return List(target.GetGenericArguments()[0], node, scope, key, property);
        }
        if (target.IsGenericType && target.GetGenericTypeDefinition() is var dictionary
            && (dictionary == typeof(IReadOnlyDictionary<,>) || dictionary == typeof(Dictionary<,>)))
        {
            return Map(target.GetGenericArguments()[1], node, scope, key, property);
        }
        if (typeof(DefinitionNode).IsAssignableFrom(target))
        {
            return node is YamlTreeMapping
                ? BindObject(target, node, scope with { PathPrefix = scope.PathPrefix + key + "." }, nameFromKey: null)
                : WrongKind(node, scope, key, "a mapping");
        }
        throw new InvalidOperationException($"The definition model uses {target}, which the binder does not know.");
    }

    private object? WrongKind(YamlTreeNode node, Scope scope, string key, string expected)
    {
        var got = node is YamlTreeScalar scalar ? $"'{Shorten(scalar.Value)}'" : node.KindName;
        Error(node.Start, $"{scope.Describe(key)} must be {expected}, got {got}");
        return null;
    }

    private static string Shorten(string text) => text.Length <= 40 ? text : text[..37] + "...";

    /// <summary>A text value: in <c>env</c>, <c>command</c> and <c>entrypoint</c> as <see cref="SecretText"/>, elsewhere plain.</summary>
    private string? Text(YamlTreeNode node, Scope scope, string key, bool allowsSecrets)
    {
        if (node is not YamlTreeScalar scalar)
        {
            WrongKind(node, scope, key, "a text value");
            return null;
        }
        var value = Substitute(scalar, scope, key, allowsSecrets);
        return allowsSecrets ? value?.Encoded : value?.Plain;
    }

    /// <summary>
    /// The scalar with its variables substituted, or null when that failed: the problem is reported, and a
    /// value that is not bound is checked no further, so one mistake gives one error.
    /// </summary>
    private TextBuilder? Substitute(YamlTreeScalar scalar, Scope scope, string key, bool allowsSecrets)
    {
        var failed = false;
        var value = variables.Substitute(scalar, source, (at, message) =>
        {
            failed = true;
            Error(at, $"{scope.Describe(key)}: {message}");
        }, out var mentionsSecret);
        if (mentionsSecret && !allowsSecrets)
        {
            failed = true;
            Error(scalar.Start, $"{scope.Describe(key)} cannot hold a ${{secret:...}}; secrets go in {dialect.Key("env")}, command, entrypoint or {dialect.Key("registry.password")}");
        }
        return failed ? null : value;
    }

    private object? Scalar(YamlTreeNode node, Scope scope, string key, string expected, Func<string, object?> parse)
    {
        if (node is not YamlTreeScalar scalar)
        {
            return WrongKind(node, scope, key, expected);
        }
        if (Substitute(scalar, scope, key, allowsSecrets: false)?.Plain is not { } text)
        {
            return null;
        }
        var value = parse(text.Trim());
        if (value is null)
        {
            Error(scalar.Start, $"{scope.Describe(key)} must be {expected}, got '{Shorten(text)}'");
        }
        return value;
    }

    private object? Enum(Type type, YamlTreeNode node, Scope scope, string key)
    {
        var names = System.Enum.GetNames(type).ToDictionary(n => JsonNamingPolicy.SnakeCaseLower.ConvertName(n), n => n);
        if (node is not YamlTreeScalar scalar)
        {
            return WrongKind(node, scope, key, "one of " + string.Join(", ", names.Keys));
        }
        if (Substitute(scalar, scope, key, allowsSecrets: false)?.Plain.Trim() is not { } text)
        {
            return null;
        }
        if (names.TryGetValue(text, out var member) || names.TryGetValue(text.ToLowerInvariant(), out member))
        {
            return System.Enum.Parse(type, member);
        }
        Error(scalar.Start, $"{scope.Describe(key)} must be one of {string.Join(", ", names.Keys)}; got '{Shorten(text)}'"
            + Suggestions.DidYouMean(text, names.Keys).Replace(";", ",", StringComparison.Ordinal));
        return null;
    }

    private CommandLine? Command(YamlTreeNode node, Scope scope, string key)
    {
        switch (node)
        {
            case YamlTreeScalar scalar:
                // Split before the references are written out, so quotes and backslashes cannot change one.
                if (Substitute(scalar, scope, key, allowsSecrets: true) is not { } text)
                {
                    return null;
                }
                if (CommandLine.TrySplit(text.Parts, out var words, out var problem))
                {
                    return new CommandLine(words.Select(SecretText.Encode).ToList());
                }
                Error(scalar.Start, $"{scope.Describe(key)}: {problem}");
                return null;
            case YamlTreeSequence sequence:
                var arguments = new List<string>(sequence.Items.Count);
                for (var i = 0; i < sequence.Items.Count; i++)
                {
                    if (Text(sequence.Items[i], scope, $"{key}[{i}]", allowsSecrets: true) is { } argument)
                    {
                        arguments.Add(argument);
                    }
                }
                return new CommandLine(arguments);
            default:
                WrongKind(node, scope, key, "a list of arguments or a command string");
                return null;
        }
    }

    private VolumeMount? Volume(YamlTreeNode node, Scope scope, string key)
    {
        if (node is YamlTreeMapping mapping)
        {
            // Long form: { source, target, read_only }.
            string? sourcePath = null, targetPath = null;
            var readOnly = false;
            foreach (var (k, v) in mapping.Entries.Where(e => !IsExtension(e.Key)))
            {
                switch (k.Value)
                {
                    case "source": sourcePath = Text(v, scope, $"{key}.source", false); break;
                    case "target": targetPath = Text(v, scope, $"{key}.target", false); break;
                    case "read_only": readOnly = Scalar(v, scope, $"{key}.read_only", "true or false", s => s.ToLowerInvariant() switch { "true" => true, "false" => false, _ => null }) is true; break;
                    default:
                        Error(k.Start, $"{scope.Describe(key)}: unknown key '{k.Value}'" + Suggestions.DidYouMean(k.Value, ["source", "target", "read_only"]));
                        break;
                }
            }
            if (mapping.Find("source") is null || mapping.Find("target") is null)
            {
                Error(mapping.Start, $"{scope.Describe(key)} needs both 'source' and 'target'");
                return null;
            }
            return sourcePath is null || targetPath is null ? null : new VolumeMount(HostPath(sourcePath), targetPath, readOnly);
        }
        if (Text(node, scope, key, false) is not { } text)
        {
            return null;
        }
        var parts = text.Split(':');
        var mode = parts.Length == 3 ? parts[2] : "rw";
        if (parts.Length is < 2 or > 3 || parts[0].Length == 0 || parts[1].Length == 0 || mode is not ("ro" or "rw"))
        {
            Error(node.Start, $"{scope.Describe(key)} must be SOURCE:TARGET or SOURCE:TARGET:ro|rw, got '{Shorten(text)}'");
            return null;
        }
        return new VolumeMount(HostPath(parts[0]), parts[1], mode == "ro");
    }

    /// <summary>Relative host paths (<c>./data</c>) are relative to the definition file, as in docker-compose.</summary>
    private string HostPath(string source) =>
        source.StartsWith("./", StringComparison.Ordinal) || source.StartsWith("../", StringComparison.Ordinal) || source == "."
            ? Path.GetFullPath(Path.Combine(baseDirectory, source))
            : source;

    private SecretReference? Secret(YamlTreeNode node, Scope scope, string key)
    {
        if (node is not YamlTreeScalar scalar)
        {
            WrongKind(node, scope, key, "a secret reference such as ${REGISTRY_PASSWORD}");
            return null;
        }
        if (variables.SecretName(scalar.Value.Trim()) is not { } name)
        {
            // Never echo the value: it may be the password itself.
            Error(scalar.Start, $"{scope.Describe(key)} must name a secret as ${{NAME}}, resolved on the worker; a literal password would be stored and sent with every run");
            return null;
        }
        return new SecretReference(name);
    }

    private JsonNode? Json(YamlTreeNode node, Scope scope, string key)
    {
        switch (node)
        {
            case YamlTreeMapping mapping:
                var obj = new JsonObject();
                foreach (var (k, v) in mapping.Entries)
                {
                    var path = $"{key}.{k.Value}";
                    RecordEntry(scope, path, k, v);
                    obj[k.Value] = Json(v, scope, path);
                }
                return obj;
            case YamlTreeSequence sequence:
                var array = new JsonArray();
                for (var i = 0; i < sequence.Items.Count; i++)
                {
                    array.Add(Json(sequence.Items[i], scope, $"{key}[{i}]"));
                }
                return array;
            case YamlTreeScalar scalar:
                var text = Text(scalar, scope, key, allowsSecrets: false) ?? "";
                if (!scalar.IsPlain)
                {
                    return JsonValue.Create(text);
                }
                // YAML 1.2 core schema for plain scalars.
                return scalar.IsNull ? null
                    : text is "true" or "True" or "TRUE" ? JsonValue.Create(true)
                    : text is "false" or "False" or "FALSE" ? JsonValue.Create(false)
                    : long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var l) ? JsonValue.Create(l)
                    : double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) && double.IsFinite(d) && text.Any(char.IsAsciiDigit) ? JsonValue.Create(d)
                    : JsonValue.Create(text);
            default:
                return null;
        }
    }

    private object? List(Type itemType, YamlTreeNode node, Scope scope, string key, ModelProperty? property)
    {
        if (node is not YamlTreeSequence sequence)
        {
            return WrongKind(node, scope, key, "a list");
        }
        var list = (System.Collections.IList)Activator.CreateInstance(typeof(List<>).MakeGenericType(itemType))!;
        for (var i = 0; i < sequence.Items.Count; i++)
        {
            var item = sequence.Items[i];
            var path = $"{key}[{i}]";
            if (item is YamlTreeScalar { IsNull: true })
            {
                Error(item.Start, $"{scope.Describe(path)} is empty");
                continue;
            }
            var bound = typeof(DefinitionNode).IsAssignableFrom(itemType)
                ? item is YamlTreeMapping ? BindObject(itemType, item, scope, nameFromKey: null) : WrongKind(item, scope, path, "a mapping")
                : Bind(itemType, item, scope, path, property);
            if (bound is not null)
            {
                // Recorded under the index in the bound list, which the validator walks; items that
                // failed to bind are not in it.
                scope.Owner?.Source.RecordValue($"{scope.PathPrefix}{key}[{list.Count}]", item.Start);
                list.Add(bound);
            }
        }
        ReportIfEmpty(list.Count, sequence, scope, key, property);
        return list;
    }

    private object? Map(Type valueType, YamlTreeNode node, Scope scope, string key, ModelProperty? property)
    {
        if (node is not YamlTreeMapping mapping)
        {
            return WrongKind(node, scope, key, "a mapping");
        }
        var map = (System.Collections.IDictionary)Activator.CreateInstance(typeof(Dictionary<,>).MakeGenericType(typeof(string), valueType))!;
        foreach (var (k, v) in mapping.Entries)
        {
            var path = $"{key}.{k.Value}";
            RecordEntry(scope, path, k, v);
            object? bound;
            if (typeof(DefinitionNode).IsAssignableFrom(valueType))
            {
                bound = v is YamlTreeMapping
                    ? BindObject(valueType, v, scope, nameFromKey: k.Value)
                    : WrongKind(v, scope, path, "a mapping");
            }
            else if (v is YamlTreeScalar { IsNull: true } && valueType == typeof(string))
            {
                bound = "";
            }
            else
            {
                bound = Bind(valueType, v, scope, path, property);
            }
            if (bound is not null)
            {
                map[k.Value] = bound;
            }
        }
        ReportIfEmpty(map.Count, mapping, scope, key, property);
        return map;
    }

    private static void RecordEntry(Scope scope, string path, YamlTreeNode key, YamlTreeNode value)
    {
        scope.Owner?.Source.RecordKey(scope.PathPrefix + path, key.Start);
        scope.Owner?.Source.RecordValue(scope.PathPrefix + path, value.Start);
    }

    /// <summary>A collection marked <see cref="MinLengthAttribute"/> that was written empty; one whose items all failed has its errors already.</summary>
    private void ReportIfEmpty(int count, YamlTreeNode node, Scope scope, string key, ModelProperty? property)
    {
        var isWrittenEmpty = node is YamlTreeSequence { Items.Count: 0 } or YamlTreeMapping { Entries.Count: 0 };
        if (count == 0 && isWrittenEmpty && property?.MinimumCount is { } minimum && minimum.Length > 0)
        {
            Error(node.Start, $"{scope.Describe(key)} is empty; {minimum.ErrorMessage}");
        }
    }

    private sealed record ModelProperty(PropertyInfo Info, bool AllowsSecrets, MinLengthAttribute? MinimumCount);

    /// <summary>The keys of one model type, computed once.</summary>
    private sealed class ModelShape
    {
        public ModelShape(Type type)
        {
            Kind = type.GetCustomAttribute<DefinitionKindAttribute>()?.Kind;
            IsNamed = Kind is not null && type.GetProperty("Name") is not null;
            foreach (var info in type.GetProperties(BindingFlags.Public | BindingFlags.Instance))
            {
                if (info.SetMethod is null || !info.SetMethod.IsPublic || info.GetCustomAttribute<JsonIgnoreAttribute>() is not null)
                {
                    continue;
                }
                var key = info.GetCustomAttribute<JsonPropertyNameAttribute>()?.Name
                    ?? JsonNamingPolicy.SnakeCaseLower.ConvertName(info.Name);
                var allowsSecrets = key is "env" or "command" or "entrypoint";
                Properties[key] = new ModelProperty(info, allowsSecrets, info.GetCustomAttribute<MinLengthAttribute>());
                if (info.GetCustomAttribute<RequiredAttribute>() is not null)
                {
                    Required.Add(key);
                }
            }
        }

        public string? Kind { get; }

        [MemberNotNullWhen(true, nameof(Kind))]
        public bool IsNamed { get; }

        public Dictionary<string, ModelProperty> Properties { get; } = new(StringComparer.Ordinal);

        public List<string> Required { get; } = [];
    }
}
