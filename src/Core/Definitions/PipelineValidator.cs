using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Pipelines.Core.Graph;

namespace Pipelines.Core.Definitions;

/// <summary>
/// The checks that need more than one key at a time: names, references between steps, cycles,
/// the kind of each step, limits, cron and time zones, parameters and payloads.
/// </summary>
public static partial class PipelineValidator
{
    /// <summary>Keys that only make sense on a container step.</summary>
    private static readonly string[] ContainerKeys =
        ["image", "tag", "build", "command", "entrypoint", "env", "volumes", "workdir", "registry", "sidecars", "resources", "network", "labels"];

    private static readonly string[] StepKinds = ["handler", "image", "build"];

    /// <summary>Most cores a container may be given: far more than any host has, so a typo (2000 for 2) is caught.</summary>
    private const int MaxCpus = 1024;

    public static void Validate(PipelineFileDefinition file, List<DefinitionError> errors) => Validate(file, errors, Dialect.Native);

    /// <summary>Validates a file whose messages name keys and objects in <paramref name="dialect"/>.</summary>
    internal static void Validate(PipelineFileDefinition file, List<DefinitionError> errors, Dialect dialect)
    {
        void Error(SourcePosition at, string message) => errors.Add(new DefinitionError(file.Source.File, at, message));

        foreach (var pipeline in file.Pipelines.Values)
        {
            var where = dialect.Label("pipeline", pipeline.Name);
            if (!NameRegex().IsMatch(pipeline.Name))
            {
                Error(file.Source.Key("pipelines." + pipeline.Name), $"{where}: {NameRule(dialect.Noun("pipeline"))}");
            }
            ValidateParameters(pipeline, Error);
            if (pipeline.Defaults is { } defaults)
            {
                ValidateRetry(defaults.Retry, pipeline.Source, "defaults.retry", where, Error);
                ValidatePositive(defaults.Timeout, pipeline.Source.Value("defaults.timeout"), $"{where}: 'defaults.timeout'", Error);
            }
            var names = ValidateStepNames(pipeline, dialect, Error);
            foreach (var step in pipeline.Steps)
            {
                ValidateStep(step, names, dialect, Error);
            }
            ValidateCycles(pipeline, dialect, Error);
            ValidateSchedules(pipeline, Error);
        }
    }

    private static Dictionary<string, SourcePosition> ValidateStepNames(PipelineDefinition pipeline, Dialect dialect, Action<SourcePosition, string> error)
    {
        var names = new Dictionary<string, SourcePosition>(StringComparer.Ordinal);
        foreach (var step in pipeline.Steps)
        {
            var at = step.Source.Value("name");
            if (step.Name.Length == 0 && !step.Source.Has("name"))
            {
                continue; // reported as a missing required key
            }
            if (!NameRegex().IsMatch(step.Name))
            {
                error(at, $"{dialect.Label("step", step.Name)}: {NameRule(dialect.Noun("step"))}");
            }
            if (!names.TryAdd(step.Name, at))
            {
                error(at, $"duplicate {dialect.Noun("step")} name '{step.Name}' (first at {names[step.Name]})");
            }
        }
        foreach (var step in pipeline.Steps)
        {
            var sidecars = new Dictionary<string, SourcePosition>(StringComparer.Ordinal);
            foreach (var sidecar in step.Sidecars)
            {
                var at = sidecar.Source.Value("name");
                if (names.TryGetValue(sidecar.Name, out var stepAt))
                {
                    error(at, $"{dialect.Label("sidecar", sidecar.Name)} of {dialect.Noun("step")} '{step.Name}' has the name of {dialect.Noun("step")} '{sidecar.Name}' (at {stepAt}); {dialect.Noun("sidecar")} and {dialect.Noun("step")} names share one namespace");
                }
                else if (!sidecars.TryAdd(sidecar.Name, at))
                {
                    error(at, $"{dialect.Label("step", step.Name)} has two sidecars named '{sidecar.Name}' (first at {sidecars[sidecar.Name]})");
                }
                else if (!NameRegex().IsMatch(sidecar.Name))
                {
                    error(at, $"{dialect.Label("sidecar", sidecar.Name)}: {NameRule(dialect.Noun("sidecar"))}");
                }
            }
        }
        return names;
    }

    private static void ValidateStep(StepDefinition step, Dictionary<string, SourcePosition> names, Dialect dialect, Action<SourcePosition, string> error)
    {
        var where = dialect.Label("step", step.Name);
        var source = step.Source;
        var kinds = StepKinds.Where(source.Has).ToList();
        if (kinds.Count == 0)
        {
            error(source.Start, $"{where} needs one of 'handler' (a C# handler) or 'image' or 'build' (a container)");
        }
        else if (kinds.Count > 1)
        {
            error(source.Key(kinds[1]), $"{where} has both '{kinds[0]}' and '{kinds[1]}'; a step is either a handler or a container");
        }
        else if (step.Handler is not null)
        {
            if (!HandlerRegex().IsMatch(step.Handler))
            {
                error(source.Value("handler"), $"{where}: handler name '{step.Handler}' may contain only letters, digits, '_', '-' and '.', starting with a letter");
            }
            foreach (var key in ContainerKeys.Where(source.Has))
            {
                error(source.Key(key), $"{where}: '{key}' applies to container steps only; this step runs handler '{step.Handler}'");
            }
        }
        if (step.Pool is not null && !HandlerRegex().IsMatch(step.Pool))
        {
            error(source.Value("pool"), $"{where}: pool name '{step.Pool}' may contain only letters, digits, '_', '-' and '.', starting with a letter");
        }
        ValidateContainer(step, where, dialect, error);
        foreach (var sidecar in step.Sidecars)
        {
            var sidecarWhere = dialect.Label("sidecar", sidecar.Name);
            if (!sidecar.Source.Has("image") && !sidecar.Source.Has("build"))
            {
                error(sidecar.Source.Start, $"{sidecarWhere} of step '{step.Name}' needs an 'image' or a 'build'");
            }
            else if (sidecar.Source.Has("image") && sidecar.Source.Has("build"))
            {
                error(sidecar.Source.Key("build"), $"{sidecarWhere} has both 'image' and 'build'; give one");
            }
            ValidateContainer(sidecar, sidecarWhere, dialect, error);
        }

        var seen = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < step.DependsOn.Count; i++)
        {
            var dependency = step.DependsOn[i];
            var at = source.Value($"depends_on[{i}]");
            if (dependency == step.Name)
            {
                error(at, $"{where} depends on itself");
            }
            else if (!names.ContainsKey(dependency))
            {
                error(at, $"{where} depends on unknown {dialect.Noun("step")} '{dependency}'" + Suggestions.DidYouMean(dependency, names.Keys));
            }
            else if (!seen.Add(dependency))
            {
                error(at, $"{where} lists '{dependency}' twice in {dialect.Key("depends_on")}");
            }
        }
        ValidateRetry(step.Retry, source, "retry", where, error);
        ValidatePositive(step.Timeout, source.Value("timeout"), $"{where}: 'timeout'", error);
        for (var i = 0; i < step.SkipInEnv.Count; i++)
        {
            if (string.IsNullOrWhiteSpace(step.SkipInEnv[i]))
            {
                error(source.Value($"skip_in_env[{i}]"), $"{where}: '{dialect.Key("skip_in_env")}' entries name environments and cannot be blank");
            }
        }
    }

    private static void ValidateContainer(ContainerDefinition container, string where, Dialect dialect, Action<SourcePosition, string> error)
    {
        var source = container.Source;
        ValidateImage(container, where, dialect, error);
        if (container.Registry is not null && !source.Has("image"))
        {
            error(source.Key("registry"), $"{where}: 'registry' needs an 'image' to pull");
        }
        foreach (var (name, _) in container.Env)
        {
            if (!EnvNameRegex().IsMatch(name))
            {
                error(source.Key($"env.{name}"), $"{where}: '{name}' is not a valid environment variable name");
            }
        }
        for (var i = 0; i < container.Volumes.Count; i++)
        {
            var volume = container.Volumes[i];
            if (!volume.Target.StartsWith('/'))
            {
                error(source.Value($"volumes[{i}]"), $"{where}: volume target '{volume.Target}' must be an absolute path inside the container");
            }
        }
        if (container.Workdir is { } workdir && !workdir.StartsWith('/'))
        {
            error(source.Value("workdir"), $"{where}: 'workdir' must be an absolute path inside the container, got '{workdir}'");
        }
        if (container.Resources is { } resources)
        {
            if (resources.Memory is { Bytes: < 6 * 1024 * 1024 })
            {
                error(source.Value("resources.memory"), $"{where}: 'resources.memory' must be at least 6m (Docker's minimum)");
            }
            if (resources.Cpus is <= 0)
            {
                error(source.Value("resources.cpus"), $"{where}: 'resources.cpus' must be more than 0, e.g. 0.5 or 2");
            }
            else if (resources.Cpus is > MaxCpus and var cpus)
            {
                error(source.Value("resources.cpus"), string.Create(CultureInfo.InvariantCulture,
                    $"{where}: 'resources.cpus' must be at most {MaxCpus} (cores), got {cpus}"));
            }
            if (resources.Pids is < 1)
            {
                error(source.Value("resources.pids"), $"{where}: 'resources.pids' must be at least 1");
            }
        }
        if (container.Build is { Context.Length: 0 } && source.Has("build.context"))
        {
            error(source.Value("build.context"), $"{where}: 'build.context' is empty; it names the folder to build");
        }
    }

    private static void ValidateImage(ContainerDefinition container, string where, Dialect dialect, Action<SourcePosition, string> error)
    {
        var source = container.Source;
        var imageKey = dialect.Key("image");
        ImageReferenceParts? image = null;
        if (container.Image is { } reference && !ImageReferenceParts.TryParse(reference, out image, out var problem))
        {
            error(source.Value("image"), $"{where}: '{imageKey}': '{reference}' is not an image reference: {problem}");
        }
        if (container.Tag is not { } tag)
        {
            return;
        }
        if (!source.Has("image"))
        {
            error(source.Key("tag"), $"{where}: 'tag' needs an '{imageKey}'");
        }
        else if (tag.Length == 0)
        {
            error(source.Value("tag"), $"{where}: 'tag' is empty; give a tag such as 1.36, or leave 'tag' out for latest");
        }
        else if (ImageReferenceParts.TagProblem(tag) is { } tagProblem)
        {
            error(source.Value("tag"), $"{where}: 'tag': {tagProblem}");
        }
        else if (image?.Digest is not null)
        {
            error(source.Key("tag"), $"{where}: 'tag' '{tag}' cannot be added to '{imageKey}' '{container.Image}', which is pinned to a digest");
        }
        else if (image?.Tag is { } written)
        {
            error(source.Key("tag"), $"{where}: 'tag' '{tag}' conflicts with the tag '{written}' written in '{imageKey}' '{container.Image}'; give the tag in one place");
        }
    }

    private static void ValidateRetry(RetryPolicy? retry, SourceMap source, string path, string where, Action<SourcePosition, string> error)
    {
        if (retry is null)
        {
            return;
        }
        if (retry.Attempts is < 1 or > 100)
        {
            error(source.Value($"{path}.attempts"), $"{where}: '{path}.attempts' must be between 1 and 100, got {retry.Attempts}");
        }
        ValidatePositive(retry.Initial, source.Value($"{path}.initial"), $"{where}: '{path}.initial'", error);
        if (retry.Max.Value < retry.Initial.Value)
        {
            error(source.Value($"{path}.max"), $"{where}: '{path}.max' ({retry.Max}) is shorter than '{path}.initial' ({retry.Initial})");
        }
    }

    private static void ValidatePositive(Duration? duration, SourcePosition at, string what, Action<SourcePosition, string> error)
    {
        if (duration is { } d && d.Value <= TimeSpan.Zero)
        {
            error(at, $"{what} must be longer than 0");
        }
    }

    private static void ValidateCycles(PipelineDefinition pipeline, Dialect dialect, Action<SourcePosition, string> error)
    {
        var steps = pipeline.Steps;
        var index = new Dictionary<string, int>(StringComparer.Ordinal);
        for (var i = 0; i < steps.Count; i++)
        {
            index.TryAdd(steps[i].Name, i);
        }
        var edges = steps
            .Select(s => (IReadOnlyList<int>)s.DependsOn.Where(d => d != s.Name && index.ContainsKey(d)).Select(d => index[d]).Distinct().ToArray())
            .ToArray();
        foreach (var cycle in PipelineGraph.FindCycles(steps.Count, i => edges[i]))
        {
            var first = steps[cycle[0]];
            var second = steps[cycle.Count > 1 ? cycle[1] : cycle[0]];
            var entry = first.DependsOn.ToList().IndexOf(second.Name);
            var path = string.Join(" -> ", cycle.Append(cycle[0]).Select(i => steps[i].Name));
            error(first.Source.Value($"depends_on[{entry}]"), $"{dialect.Label("pipeline", pipeline.Name)} has a dependency cycle: {path} (each {dialect.Noun("step")} depends on the next)");
        }
    }

    private static void ValidateParameters(PipelineDefinition pipeline, Action<SourcePosition, string> error)
    {
        foreach (var parameter in pipeline.Parameters.Values)
        {
            var where = $"parameter '{parameter.Name}' of pipeline '{pipeline.Name}'";
            if (!ParameterRegex().IsMatch(parameter.Name))
            {
                error(pipeline.Source.Key($"parameters.{parameter.Name}"), $"{where}: a parameter name is letters, digits and '_', not starting with a digit");
            }
            if (parameter.Type is not { } type)
            {
                if (!parameter.Source.Has("type"))
                {
                    error(parameter.Source.Start, $"{where} needs a 'type' (string, integer, number, boolean, object or array)");
                }
                continue;
            }
            if (parameter.Default is { } value && TypeMismatch(type, value) is { } problem)
            {
                error(parameter.Source.Value("default"), $"{where}: default {problem}");
            }
        }
    }

    private static void ValidateSchedules(PipelineDefinition pipeline, Action<SourcePosition, string> error)
    {
        var names = new Dictionary<string, SourcePosition>(StringComparer.Ordinal);
        foreach (var schedule in pipeline.Schedules)
        {
            var where = $"schedule '{schedule.Name}'";
            var source = schedule.Source;
            if (schedule.Name.Length > 0 && !names.TryAdd(schedule.Name, source.Value("name")))
            {
                error(source.Value("name"), $"pipeline '{pipeline.Name}' has two schedules named '{schedule.Name}' (first at {names[schedule.Name]})");
            }
            else if (schedule.Name.Length > 0 && !NameRegex().IsMatch(schedule.Name))
            {
                error(source.Value("name"), $"{where}: {NameRule("schedule")}");
            }
            if (schedule.Cron.Length > 0 && !CronSchedule.TryNormalize(schedule.Cron, out _, out var cronError))
            {
                error(source.Value("cron"), $"{where}: {cronError}");
            }
            if (!CronSchedule.TryFindTimeZone(schedule.Timezone, out _, out var zoneError))
            {
                error(source.Value("timezone"), $"{where}: {zoneError}");
            }
            if (schedule.StartAt is { } start && schedule.EndAt is { } end && end <= start)
            {
                error(source.Value("end_at"), $"{where}: 'end_at' is not after 'start_at'");
            }
            foreach (var problem in PayloadProblems(pipeline, schedule.Payload))
            {
                error(problem.Key is { } key ? source.Value($"payload.{key}") : source.Value("payload"), $"{where}: {problem.Message}");
            }
        }
    }

    /// <summary>
    /// What is wrong with a run's input for this pipeline's parameters: a required one missing or a
    /// value of the wrong type. Keys that are not parameters are allowed: the payload is the handler's event.
    /// </summary>
    public static IEnumerable<(string? Key, string Message)> PayloadProblems(PipelineDefinition pipeline, JsonObject? payload)
    {
        if (payload is not null && BrokenText(payload) is { } broken)
        {
            yield return broken; // nothing else of it can be read reliably
            yield break;
        }
        foreach (var parameter in pipeline.Parameters.Values)
        {
            if (payload is null || !payload.TryGetPropertyValue(parameter.Name, out var value))
            {
                if (parameter.Required && parameter.Default is null)
                {
                    yield return (null, $"payload is missing required parameter '{parameter.Name}'");
                }
                continue;
            }
            if (parameter.Type is { } type && TypeMismatch(type, value) is { } problem)
            {
                yield return (parameter.Name, $"parameter '{parameter.Name}' {problem}");
            }
        }
    }

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>
    /// A payload that cannot be read back as it was sent: text that is not Unicode (JSON may escape
    /// half of a UTF-16 surrogate pair, <c>"\ud800"</c>, which nothing can store), or one object naming
    /// a property twice. Keyed by the top-level property it is in.
    /// </summary>
    private static (string? Key, string Message)? BrokenText(JsonObject payload) =>
        Unreadable(payload, "payload", key: null) is { } broken ? (broken.Key, $"{broken.Path} {broken.Problem}") : null;

    private const string NotUnicodeText = "text that is not valid Unicode (half of a UTF-16 surrogate pair, such as \\ud800, without the other half)";

    /// <summary>The first place under <paramref name="node"/> that cannot be read back; <paramref name="key"/> is the top-level property it is in.</summary>
    private static (string? Key, string Path, string Problem)? Unreadable(JsonNode? node, string path, string? key)
    {
        try
        {
            switch (node)
            {
                case JsonObject properties:
                    foreach (var (name, child) in properties)
                    {
                        if (!IsUnicode(name))
                        {
                            return (key, path, $"has a property name that is {NotUnicodeText}");
                        }
                        if (Unreadable(child, $"{path}.{name}", key ?? name) is { } inner)
                        {
                            return inner;
                        }
                    }
                    return null;
                case JsonArray items:
                    for (var i = 0; i < items.Count; i++)
                    {
                        if (Unreadable(items[i], $"{path}[{i}]", key) is { } inner)
                        {
                            return inner;
                        }
                    }
                    return null;
                case JsonValue value when value.GetValueKind() == System.Text.Json.JsonValueKind.String:
                    return IsUnicode(value.GetValue<string>()) ? null : (key, path, $"is {NotUnicodeText}");
                default:
                    return null;
            }
        }
        catch (InvalidOperationException)
        {
            // Reading escaped text back (a name or a value) is what fails.
            return (key, path, $"holds {NotUnicodeText}");
        }
        catch (ArgumentException)
        {
            return (key, path, "names the same property twice");
        }
    }

    private static bool IsUnicode(string text)
    {
        try
        {
            StrictUtf8.GetByteCount(text);
            return true;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }

    private static string? TypeMismatch(ParameterType type, JsonNode? value)
    {
        var kind = value?.GetValueKind();
        var matches = type switch
        {
            ParameterType.String => kind == System.Text.Json.JsonValueKind.String,
            ParameterType.Boolean => kind is System.Text.Json.JsonValueKind.True or System.Text.Json.JsonValueKind.False,
            ParameterType.Integer => kind == System.Text.Json.JsonValueKind.Number && decimal.TryParse(value!.ToJsonString(), NumberStyles.Float, CultureInfo.InvariantCulture, out var n) && n == decimal.Truncate(n),
            ParameterType.Number => kind == System.Text.Json.JsonValueKind.Number,
            ParameterType.Object => kind == System.Text.Json.JsonValueKind.Object,
            ParameterType.Array => kind == System.Text.Json.JsonValueKind.Array,
            _ => true,
        };
        return matches ? null : $"must be {Article(type)} {type.ToString().ToLowerInvariant()}, got {Describe(value)}";
    }

    private static string Article(ParameterType type) => type is ParameterType.Integer or ParameterType.Object or ParameterType.Array ? "an" : "a";

    private static string Describe(JsonNode? value) => value?.GetValueKind() switch
    {
        null or System.Text.Json.JsonValueKind.Null => "null",
        System.Text.Json.JsonValueKind.String => $"the text {value.ToJsonString()}",
        System.Text.Json.JsonValueKind.Object => "an object",
        System.Text.Json.JsonValueKind.Array => "an array",
        _ => value.ToJsonString(),
    };

    private static string NameRule(string what) =>
        $"a {what} name is 1-100 letters, digits, '_', '-' or '.', starting with a letter or digit";

    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")]
    private static partial Regex NameRegex();

    [GeneratedRegex("^[A-Za-z][A-Za-z0-9_.-]{0,99}$")]
    private static partial Regex HandlerRegex();

    [GeneratedRegex("^[A-Za-z_][A-Za-z0-9_]*$")]
    private static partial Regex EnvNameRegex();

    [GeneratedRegex("^[A-Za-z_][A-Za-z0-9_]{0,99}$")]
    private static partial Regex ParameterRegex();
}
