namespace Pipelines.Core.Definitions;

/// <summary>
/// Where a definition object and each of its keys and values came from, so validation that runs
/// after binding can still point at the exact line and column. Paths are relative to the object:
/// <c>depends_on[1]</c>, <c>retry.attempts</c>, <c>env.TOKEN</c>.
/// </summary>
public sealed class SourceMap(string file, SourcePosition start)
{
    private readonly Dictionary<string, SourcePosition> _keys = new(StringComparer.Ordinal);
    private readonly Dictionary<string, SourcePosition> _values = new(StringComparer.Ordinal);

    public static SourceMap None { get; } = new("", SourcePosition.Start);

    public string File { get; } = file;

    /// <summary>Where the object starts (its first key, for a mapping in block style).</summary>
    public SourcePosition Start { get; } = start;

    public SourcePosition Key(string path) => _keys.TryGetValue(path, out var p) ? p : Start;

    public SourcePosition Value(string path) => _values.TryGetValue(path, out var p) ? p : Key(path);

    public bool Has(string path) => _keys.ContainsKey(path) || _values.ContainsKey(path);

    internal void RecordKey(string path, SourcePosition position) => _keys[path] = position;

    internal void RecordValue(string path, SourcePosition position) => _values[path] = position;
}

/// <summary>Base of every object read from a definition file: it knows where it came from.</summary>
public abstract class DefinitionNode
{
    /// <summary>Positions of this object's keys and values in its file.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public SourceMap Source { get; internal set; } = SourceMap.None;
}

/// <summary>An object whose name is the key it is filed under (a pipeline, a parameter).</summary>
public interface INamedByKey
{
    string Name { get; set; }
}

/// <summary>What a definition object is called in error messages: <c>step 'load'</c>.</summary>
[AttributeUsage(AttributeTargets.Class)]
public sealed class DefinitionKindAttribute(string kind) : Attribute
{
    public string Kind { get; } = kind;
}
