using YamlDotNet.Core;
using Pipelines.Core.Definitions.Yaml;

namespace Pipelines.Core.Definitions;

/// <summary>
/// Reads copili's pipeline description format unchanged: a pipeline name mapping to a list of
/// container descriptions. The tree is rewritten into the native shape, reusing the original
/// nodes so every error still points into the user's file. As in copili, unknown dependencies are
/// ignored with a warning, and service containers (<c>is_service_container</c>) also form a
/// second pipeline, <c>NAME-services</c>, run daily at 00:00 like copili's service mode.
/// </summary>
internal static class CopiliReader
{
    public const string ServicesSuffix = "-services";

    private sealed record Shape(string Kind, string[] Keys);

    private static readonly Shape Container = new("container",
    [
        "name", "image_repo", "tag", "info_link", "desc", "image_reg_password", "image_reg_username",
        "is_service_container", "env_vars", "dependencies", "exlude_in_env", "volumes", "command", "sidecars",
        "labels", "force_rerun",
    ]);

    private static readonly Shape Sidecar = new("sidecar",
        ["name", "image_repo", "tag", "image_reg_password", "image_reg_username", "env_vars", "volumes", "command", "labels", "desc", "info_link"]);

    /// <summary>Copili keys that are native keys under another name (or path).</summary>
    private static readonly Dictionary<string, string> Renamed = new(StringComparer.Ordinal)
    {
        ["image_repo"] = "image",
        ["desc"] = "description",
        ["env_vars"] = "env",
        ["exlude_in_env"] = "skip_in_env",
        ["dependencies"] = "depends_on",
        ["image_reg_username"] = "registry.username",
        ["image_reg_password"] = "registry.password",
        ["info_link"] = "labels.info_link",
    };

    /// <summary>The words of copili files: the native checks report <c>image_repo</c>, <c>copili container 'load'</c>.</summary>
    public static Dialect Dialect { get; } = new(
        Renamed.ToDictionary(r => r.Value, r => r.Key, StringComparer.Ordinal),
        new Dictionary<string, string>(StringComparer.Ordinal) { ["step"] = "container" },
        labelPrefix: "copili ");

    /// <summary>A copili file maps a name to a list; a native file has a 'pipelines' key.</summary>
    public static bool Recognizes(YamlTreeNode root) =>
        root is YamlTreeMapping mapping && mapping.Find("pipelines") is null
        && mapping.Entries.Count > 0 && mapping.Entries[0].Value is YamlTreeSequence;

    public static YamlTreeMapping ToNative(YamlTreeMapping root, string file, CopiliOptions options, List<DefinitionError> diagnostics)
    {
        var pipelines = new YamlTreeMapping(root.Start);
        foreach (var (name, value) in root.Entries)
        {
            if (value is not YamlTreeSequence items)
            {
                diagnostics.Add(new DefinitionError(file, value.Start, $"copili pipeline '{name.Value}' must be a list of container descriptions, got {value.KindName}"));
                continue;
            }
            var steps = new YamlTreeSequence(items.Start);
            var services = new List<(YamlTreeMapping Item, string Name)>();
            var known = items.Items.OfType<YamlTreeMapping>()
                .Select(i => (i.Find("name")?.Value as YamlTreeScalar)?.Value).OfType<string>().ToHashSet(StringComparer.Ordinal);
            var dependencies = new Dictionary<string, List<string>>(StringComparer.Ordinal);
            foreach (var item in items.Items)
            {
                if (item is not YamlTreeMapping mapping)
                {
                    diagnostics.Add(new DefinitionError(file, item.Start, $"a copili container description is a mapping with at least 'name' and 'image_repo', got {item.KindName}"));
                    continue;
                }
                var step = Item(mapping, file, known, Container, diagnostics, out var stepName, out var deps, out var isService);
                steps.Items.Add(step);
                if (stepName is not null)
                {
                    dependencies[stepName] = deps;
                    if (isService)
                    {
                        services.Add((mapping, stepName));
                    }
                }
            }
            var pipeline = new YamlTreeMapping(name.Start);
            pipeline.Entries.Add(Entry("description", $"copili pipeline '{name.Value}'", name.Start));
            pipeline.Entries.Add(new YamlTreeEntry(Key("steps", name.Start), steps));
            pipelines.Entries.Add(new YamlTreeEntry(name, pipeline));
            if (services.Count > 0)
            {
                pipelines.Entries.Add(new YamlTreeEntry(
                    Synthetic(name.Value + ServicesSuffix, name.Start),
                    ServicePipeline(name, services, dependencies, file, options)));
            }
        }
        var native = new YamlTreeMapping(root.Start);
        native.Entries.Add(new YamlTreeEntry(Key("pipelines", root.Start), pipelines));
        return native;
    }

    private static YamlTreeMapping Item(YamlTreeMapping item, string file, HashSet<string> known, Shape shape,
        List<DefinitionError> diagnostics, out string? name, out List<string> dependencies, out bool isService)
    {
        name = (item.Find("name")?.Value as YamlTreeScalar)?.Value;
        dependencies = [];
        isService = false;
        var step = new YamlTreeMapping(item.Start);
        if (item.Find("image_repo") is null)
        {
            diagnostics.Add(new DefinitionError(file, item.Start, $"copili {shape.Kind} '{name}' needs 'image_repo', the image to run"));
            // A stand-in image, so the native checks do not report the same gap again in their own words;
            // the error above already keeps the file from loading.
            step.Entries.Add(Entry("image", "missing-image-repo", item.Start));
        }
        YamlTreeMapping? registry = null;
        foreach (var (key, value) in item.Entries)
        {
            if (Array.IndexOf(shape.Keys, key.Value) < 0)
            {
                diagnostics.Add(new DefinitionError(file, key.Start,
                    $"unknown key '{key.Value}' in copili {shape.Kind} '{name}'" + Suggestions.DidYouMean(key.Value, shape.Keys)));
                continue;
            }
            switch (key.Value)
            {
                case "image_repo" or "desc" or "env_vars" or "exlude_in_env":
                    step.Entries.Add(new YamlTreeEntry(Key(Renamed[key.Value], key.Start), value));
                    break;
                case "info_link":
                    AddLabel(step, key, value);
                    break;
                case "image_reg_username" or "image_reg_password":
                    if (registry is null)
                    {
                        registry = new YamlTreeMapping(key.Start);
                        step.Entries.Add(new YamlTreeEntry(Key("registry", key.Start), registry));
                    }
                    registry.Entries.Add(new YamlTreeEntry(Key(key.Value == "image_reg_username" ? "username" : "password", key.Start), value));
                    break;
                case "is_service_container":
                    isService = IsService(value, $"copili {shape.Kind} '{name}'", file, diagnostics);
                    break;
                case "force_rerun":
                    break; // copili re-runs finished containers with it; every run here runs every step anyway
                case "dependencies":
                    step.Entries.Add(new YamlTreeEntry(Key("depends_on", key.Start), Dependencies(value, name, file, known, diagnostics, dependencies)));
                    break;
                case "volumes":
                    step.Entries.Add(new YamlTreeEntry(key, Volumes(value, $"copili {shape.Kind} '{name}'", file, diagnostics)));
                    break;
                case "sidecars" when value is YamlTreeSequence sidecars:
                    var converted = new YamlTreeSequence(sidecars.Start);
                    foreach (var sidecar in sidecars.Items)
                    {
                        converted.Items.Add(sidecar is YamlTreeMapping s ? Item(s, file, known, Sidecar, diagnostics, out _, out _, out _) : sidecar);
                    }
                    step.Entries.Add(new YamlTreeEntry(key, converted));
                    break;
                default:
                    step.Entries.Add(new YamlTreeEntry(key, value));
                    break;
            }
        }
        return step;
    }

    /// <summary>copili's <c>is_service_container</c>: true or false; anything else would silently mean "not a service".</summary>
    private static bool IsService(YamlTreeNode value, string where, string file, List<DefinitionError> diagnostics)
    {
        switch (value)
        {
            case YamlTreeScalar { IsNull: true }:
                return false;
            case YamlTreeScalar scalar when scalar.Value.Equals("true", StringComparison.OrdinalIgnoreCase):
                return true;
            case YamlTreeScalar scalar when scalar.Value.Equals("false", StringComparison.OrdinalIgnoreCase):
                return false;
            default:
                var got = value is YamlTreeScalar other ? $"'{other.Value}'" : value.KindName;
                diagnostics.Add(new DefinitionError(file, value.Start, $"{where}: 'is_service_container' must be true or false, got {got}"));
                return false;
        }
    }

    private static void AddLabel(YamlTreeMapping step, YamlTreeScalar key, YamlTreeNode value)
    {
        var labels = step.Find("labels")?.Value as YamlTreeMapping;
        if (labels is null)
        {
            labels = new YamlTreeMapping(key.Start);
            step.Entries.Add(new YamlTreeEntry(Key("labels", key.Start), labels));
        }
        labels.Entries.Add(new YamlTreeEntry(key, value));
    }

    private static YamlTreeNode Dependencies(YamlTreeNode value, string? name, string file, HashSet<string> known,
        List<DefinitionError> diagnostics, List<string> names)
    {
        if (value is not YamlTreeSequence list)
        {
            return value;
        }
        var kept = new YamlTreeSequence(list.Start);
        foreach (var dependency in list.Items)
        {
            if (dependency is YamlTreeScalar scalar && !known.Contains(scalar.Value))
            {
                diagnostics.Add(new DefinitionError(file, scalar.Start,
                    $"copili container '{name}' depends on unknown container '{scalar.Value}'; ignored, as copili does" + Suggestions.DidYouMean(scalar.Value, known),
                    DiagnosticSeverity.Warning));
                continue;
            }
            if (dependency is YamlTreeScalar known1)
            {
                names.Add(known1.Value);
            }
            kept.Items.Add(dependency);
        }
        return kept;
    }

    /// <summary>docker-py's <c>{HOST: {bind: TARGET, mode: ro|rw}}</c> becomes <c>[{source, target, read_only}]</c>.</summary>
    private static YamlTreeNode Volumes(YamlTreeNode value, string where, string file, List<DefinitionError> diagnostics)
    {
        if (value is not YamlTreeMapping mapping)
        {
            return value;
        }
        var list = new YamlTreeSequence(mapping.Start);
        foreach (var (host, spec) in mapping.Entries)
        {
            var volume = new YamlTreeMapping(host.Start);
            volume.Entries.Add(new YamlTreeEntry(Key("source", host.Start), host));
            if (spec is not YamlTreeMapping details)
            {
                volume.Entries.Add(new YamlTreeEntry(Key("target", spec.Start), spec));
                list.Items.Add(volume);
                continue;
            }
            var valid = true;
            void Problem(SourcePosition at, string message)
            {
                diagnostics.Add(new DefinitionError(file, at, $"{where}: volume '{host.Value}'{message}"));
                valid = false;
            }
            foreach (var (key, setting) in details.Entries)
            {
                switch (key.Value)
                {
                    case "bind":
                        volume.Entries.Add(new YamlTreeEntry(Key("target", key.Start), setting));
                        break;
                    case "mode" when setting is YamlTreeScalar { Value: "ro" or "rw" } mode:
                        volume.Entries.Add(Entry("read_only", mode.Value == "ro" ? "true" : "false", key.Start));
                        break;
                    case "mode":
                        Problem(setting.Start, $": 'mode' must be ro or rw, got {(setting is YamlTreeScalar text ? $"'{text.Value}'" : setting.KindName)}");
                        break;
                    default:
                        Problem(key.Start, $": unknown key '{key.Value}'" + Suggestions.DidYouMean(key.Value, ["bind", "mode"]));
                        break;
                }
            }
            if (details.Find("bind") is null)
            {
                Problem(host.Start, " needs 'bind', the path in the container");
            }
            if (valid)
            {
                list.Items.Add(volume); // one with a problem is reported above, and not again by the native checks
            }
        }
        return list;
    }

    private static YamlTreeMapping ServicePipeline(YamlTreeScalar name, List<(YamlTreeMapping Item, string Name)> services,
        Dictionary<string, List<string>> dependencies, string file, CopiliOptions options)
    {
        var serviceNames = services.Select(s => s.Name).ToHashSet(StringComparer.Ordinal);
        var steps = new YamlTreeSequence(name.Start);
        var ignore = new List<DefinitionError>();
        foreach (var (item, stepName) in services)
        {
            var step = Item(item, file, serviceNames, Container, ignore, out _, out _, out _);
            step.Entries.RemoveAll(e => e.Key.Value == "depends_on");
            var needs = new YamlTreeSequence(item.Start);
            foreach (var dependency in ServiceAncestors(stepName, serviceNames, dependencies))
            {
                needs.Items.Add(Synthetic(dependency, item.Start));
            }
            step.Entries.Add(new YamlTreeEntry(Key("depends_on", item.Start), needs));
            steps.Items.Add(step);
        }
        var schedule = new YamlTreeMapping(name.Start);
        schedule.Entries.Add(Entry("name", "service-mode", name.Start));
        schedule.Entries.Add(Entry("cron", options.ServiceCron, name.Start));
        schedule.Entries.Add(Entry("timezone", options.ServiceTimezone, name.Start));
        var schedules = new YamlTreeSequence(name.Start);
        schedules.Items.Add(schedule);

        var pipeline = new YamlTreeMapping(name.Start);
        pipeline.Entries.Add(Entry("description", $"service containers of copili pipeline '{name.Value}'", name.Start));
        pipeline.Entries.Add(new YamlTreeEntry(Key("steps", name.Start), steps));
        pipeline.Entries.Add(new YamlTreeEntry(Key("schedules", name.Start), schedules));
        return pipeline;
    }

    /// <summary>The service containers a service container waits for, looking through the ones that are not services.</summary>
    private static IEnumerable<string> ServiceAncestors(string step, HashSet<string> services, Dictionary<string, List<string>> dependencies)
    {
        var found = new List<string>();
        var visited = new HashSet<string>(StringComparer.Ordinal) { step };
        var pending = new Stack<string>(dependencies.GetValueOrDefault(step) ?? []);
        while (pending.TryPop(out var next))
        {
            if (!visited.Add(next))
            {
                continue;
            }
            if (services.Contains(next))
            {
                found.Add(next);
            }
            else
            {
                foreach (var further in dependencies.GetValueOrDefault(next) ?? [])
                {
                    pending.Push(further);
                }
            }
        }
        return found.Order(StringComparer.Ordinal);
    }

    private static YamlTreeScalar Key(string name, SourcePosition at) => Synthetic(name, at);

    private static YamlTreeEntry Entry(string key, string value, SourcePosition at) => new(Key(key, at), Synthetic(value, at));

    private static YamlTreeScalar Synthetic(string value, SourcePosition at) =>
        new(at, value, ScalarStyle.DoubleQuoted, tag: null, startIndex: 0, endIndex: 0);
}

/// <summary>How copili's service mode is scheduled.</summary>
public sealed record CopiliOptions
{
    /// <summary>Cron of the service-container schedule. Default daily at 00:00, as copili.</summary>
    public string ServiceCron { get; init; } = "0 0 * * *";

    /// <summary>Time zone of that schedule. Default UTC.</summary>
    public string ServiceTimezone { get; init; } = "UTC";
}
