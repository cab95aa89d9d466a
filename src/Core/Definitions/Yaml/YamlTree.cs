using YamlDotNet.Core;

namespace Pipelines.Core.Definitions.Yaml;

/// <summary>
/// A YAML node that remembers where it came from. Aliases resolve to the anchored node itself, so a
/// node may be shared; <see cref="ExpandedSize"/> counts it once per use.
/// </summary>
internal abstract class YamlTreeNode(SourcePosition start)
{
    public SourcePosition Start { get; } = start;

    /// <summary>Nodes in this subtree with every alias expanded.</summary>
    public long ExpandedSize { get; set; } = 1;

    public abstract string KindName { get; }
}

internal sealed class YamlTreeScalar(SourcePosition start, string value, ScalarStyle style, string? tag, int startIndex, int endIndex)
    : YamlTreeNode(start)
{
    public string Value { get; } = value;
    public ScalarStyle Style { get; } = style;
    public string? Tag { get; } = tag;

    /// <summary>Character offsets of the scalar in the source text, quotes included.</summary>
    public int StartIndex { get; } = startIndex;
    public int EndIndex { get; } = endIndex;

    public bool IsPlain => Style == ScalarStyle.Plain && Tag is null;

    /// <summary>A plain <c>~</c>, <c>null</c> or empty value (YAML 1.2 core schema).</summary>
    public bool IsNull => IsPlain && Value is "" or "~" or "null" or "Null" or "NULL";

    public override string KindName => IsNull ? "null" : "a scalar";
}

internal sealed class YamlTreeSequence(SourcePosition start) : YamlTreeNode(start)
{
    public List<YamlTreeNode> Items { get; } = [];
    public override string KindName => "a list";
}

internal sealed record YamlTreeEntry(YamlTreeScalar Key, YamlTreeNode Value);

internal sealed class YamlTreeMapping(SourcePosition start) : YamlTreeNode(start)
{
    public List<YamlTreeEntry> Entries { get; } = [];
    public override string KindName => "a mapping";

    public YamlTreeEntry? Find(string key) => Entries.Find(e => e.Key.Value == key);
}
