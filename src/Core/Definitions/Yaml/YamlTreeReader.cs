using System.Globalization;
using YamlDotNet.Core;
using YamlDotNet.Core.Events;

namespace Pipelines.Core.Definitions.Yaml;

/// <summary>
/// Reads YAML (and therefore JSON) into a <see cref="YamlTreeNode"/> tree with positions, without
/// recursion — nesting ten thousand levels deep cannot overflow the stack — and within
/// <see cref="DefinitionLimits"/>. Duplicate keys are errors; <c>&lt;&lt;</c> merge keys are applied.
/// </summary>
internal static class YamlTreeReader
{
    private const string MergeKey = "<<";

    public static (YamlTreeNode? Root, DefinitionError? Error) Read(string text, string file, DefinitionLimits limits)
    {
        var state = new ReaderState(text, file, limits);
        try
        {
            return (state.Run(), null);
        }
        catch (TreeError e)
        {
            return (null, e.Error);
        }
        catch (YamlException e)
        {
            return (null, state.FromYamlException(e));
        }
        catch (Exception e) when (e is InvalidOperationException or ArgumentException or IndexOutOfRangeException)
        {
            // YamlDotNet's scanner throws these on some malformed flow collections instead of a YamlException.
            return (null, state.FromParserCrash());
        }
    }

    private sealed class TreeError(DefinitionError error) : Exception(error.Message)
    {
        public DefinitionError Error { get; } = error;
    }

    private sealed class Frame(YamlTreeNode node, string? anchor, bool isFlow)
    {
        public YamlTreeNode Node { get; } = node;
        public string? Anchor { get; } = anchor;
        public bool IsFlow { get; } = isFlow;
        public YamlTreeScalar? PendingKey { get; set; }
        public Dictionary<string, SourcePosition>? Keys { get; set; }
        public List<(YamlTreeNode Source, SourcePosition At)>? Merges { get; set; }
    }

    private sealed class ReaderState(string text, string file, DefinitionLimits limits)
    {
        private readonly Stack<Frame> _open = new();
        private readonly Dictionary<string, YamlTreeNode> _anchors = new(StringComparer.Ordinal);
        private readonly HashSet<YamlTreeNode> _openNodes = [];
        private SourcePosition _lastPosition = SourcePosition.Start;
        private YamlTreeNode? _root;
        private int _documents;

        public YamlTreeNode? Run()
        {
            var parser = new Parser(new StringReader(text));
            while (parser.MoveNext())
            {
                var current = parser.Current!;
                _lastPosition = Position(current.Start);
                switch (current)
                {
                    case DocumentStart:
                        if (++_documents > 1)
                        {
                            throw Fail(_lastPosition, "a definition file holds one YAML document; found a second '---'");
                        }
                        break;
                    case Scalar scalar:
                        var node = new YamlTreeScalar(Position(scalar.Start), scalar.Value, scalar.Style, TagOf(scalar.Tag),
                            (int)scalar.Start.Index, (int)scalar.End.Index);
                        Remember(scalar.Anchor, node);
                        Attach(node);
                        break;
                    case AnchorAlias alias:
                        Attach(Resolve(alias));
                        break;
                    case MappingStart mapping:
                        Open(new YamlTreeMapping(Position(mapping.Start)), mapping.Anchor, mapping.Style == MappingStyle.Flow);
                        break;
                    case SequenceStart sequence:
                        Open(new YamlTreeSequence(Position(sequence.Start)), sequence.Anchor, sequence.Style == SequenceStyle.Flow);
                        break;
                    case MappingEnd or SequenceEnd:
                        Close();
                        break;
                }
            }
            return _root;
        }

        public DefinitionError FromYamlException(YamlException e)
        {
            var message = string.Join(' ', e.Message.TrimEnd('.').Split(' ', StringSplitOptions.RemoveEmptyEntries));
            var position = Position(e.Start);
            if (message.Contains("tab", StringComparison.OrdinalIgnoreCase) && FindIndentationTab(position.Line) is { } tab)
            {
                return new DefinitionError(file, tab, "tab character in indentation; YAML indents with spaces only");
            }
            if (e.Start.Index >= text.TrimEnd().Length && UnclosedFlow() is { } unclosed)
            {
                // The parser noticed at the end of the file; the mistake is where the bracket opened.
                return unclosed;
            }
            if (message.StartsWith("While ", StringComparison.Ordinal))
            {
                message = "w" + message[1..];
            }
            if (message.Contains("quoted scalar", StringComparison.Ordinal))
            {
                message += "; check that the quote opened here is closed";
            }
            return new DefinitionError(file, position, $"YAML syntax error: {message}");
        }

        public DefinitionError FromParserCrash() =>
            UnclosedFlow() ?? new DefinitionError(file, _lastPosition, "YAML syntax error: could not parse the text after this point");

        private DefinitionError? UnclosedFlow()
        {
            var flow = _open.FirstOrDefault(f => f.IsFlow);
            return flow is null ? null : new DefinitionError(file, flow.Node.Start,
                $"YAML syntax error: '{(flow.Node is YamlTreeMapping ? '{' : '[')}' is never closed");
        }

        private static string? TagOf(TagName tag) => tag.IsEmpty || tag.IsNonSpecific ? null : tag.Value;

        private static SourcePosition Position(Mark mark) => new((int)mark.Line, (int)mark.Column);

        private TreeError Fail(SourcePosition at, string message) => new(new DefinitionError(file, at, message));

        private void Open(YamlTreeNode node, AnchorName anchor, bool isFlow)
        {
            if (_open.Count >= limits.MaxDepth)
            {
                throw Fail(node.Start, $"nesting deeper than {limits.MaxDepth} levels is not allowed");
            }
            var anchorName = anchor.IsEmpty ? null : anchor.Value;
            if (anchorName is not null)
            {
                _anchors[anchorName] = node;
            }
            _openNodes.Add(node);
            _open.Push(new Frame(node, anchorName, isFlow));
        }

        private void Close()
        {
            var frame = _open.Pop();
            _openNodes.Remove(frame.Node);
            if (frame.Node is YamlTreeMapping mapping && frame.Merges is not null)
            {
                ApplyMerges(mapping, frame);
            }
            Attach(frame.Node);
        }

        private void Remember(AnchorName anchor, YamlTreeNode node)
        {
            if (!anchor.IsEmpty)
            {
                _anchors[anchor.Value] = node;
            }
        }

        private YamlTreeNode Resolve(AnchorAlias alias)
        {
            var at = Position(alias.Start);
            if (!_anchors.TryGetValue(alias.Value.Value, out var node))
            {
                throw Fail(at, $"unknown alias '*{alias.Value.Value}'; define '&{alias.Value.Value}' before using it");
            }
            if (_openNodes.Contains(node))
            {
                throw Fail(at, $"alias '*{alias.Value.Value}' refers to a node that contains it");
            }
            return node;
        }

        private void Attach(YamlTreeNode node)
        {
            if (node.ExpandedSize > limits.MaxExpandedNodes)
            {
                throw Fail(node.Start, string.Create(CultureInfo.InvariantCulture,
                    $"the document expands to more than {limits.MaxExpandedNodes:N0} nodes once aliases are resolved"));
            }
            if (_open.Count == 0)
            {
                _root = node;
                return;
            }
            var parent = _open.Peek();
            parent.Node.ExpandedSize += node.ExpandedSize;
            switch (parent.Node)
            {
                case YamlTreeSequence sequence:
                    sequence.Items.Add(node);
                    break;
                case YamlTreeMapping mapping when parent.PendingKey is null:
                    parent.PendingKey = node as YamlTreeScalar
                        ?? throw Fail(node.Start, "a mapping key must be a plain value, not " + node.KindName);
                    break;
                case YamlTreeMapping mapping:
                    AddEntry(mapping, parent, parent.PendingKey, node);
                    parent.PendingKey = null;
                    break;
            }
        }

        private void AddEntry(YamlTreeMapping mapping, Frame frame, YamlTreeScalar key, YamlTreeNode value)
        {
            if (key.IsPlain && key.Value == MergeKey)
            {
                (frame.Merges ??= []).Add((value, key.Start));
                return;
            }
            frame.Keys ??= new Dictionary<string, SourcePosition>(StringComparer.Ordinal);
            if (frame.Keys.TryGetValue(key.Value, out var first))
            {
                throw Fail(key.Start, $"duplicate key '{key.Value}' (first at {first})");
            }
            frame.Keys[key.Value] = key.Start;
            mapping.Entries.Add(new YamlTreeEntry(key, value));
        }

        private void ApplyMerges(YamlTreeMapping mapping, Frame frame)
        {
            // Explicit keys win over merged ones; earlier merge sources win over later ones (YAML 1.1 merge).
            var present = new HashSet<string>(mapping.Entries.Select(e => e.Key.Value), StringComparer.Ordinal);
            foreach (var (source, at) in frame.Merges!)
            {
                var sources = source is YamlTreeSequence list ? list.Items : [source];
                foreach (var item in sources)
                {
                    if (item is not YamlTreeMapping merged)
                    {
                        throw Fail(at, $"'<<' merges mappings, but this is {item.KindName}");
                    }
                    foreach (var entry in merged.Entries.Where(entry => present.Add(entry.Key.Value)))
                    {
                        mapping.Entries.Add(entry);
                    }
                }
            }
        }

        private SourcePosition? FindIndentationTab(int fromLine)
        {
            var line = 1;
            var lineStart = 0;
            for (var i = 0; i <= text.Length; i++)
            {
                if (i == text.Length || text[i] == '\n')
                {
                    if (line >= fromLine)
                    {
                        for (var j = lineStart; j < i && text[j] is ' ' or '\t'; j++)
                        {
                            if (text[j] == '\t')
                            {
                                return new SourcePosition(line, j - lineStart + 1);
                            }
                        }
                    }
                    line++;
                    lineStart = i + 1;
                }
            }
            return null;
        }
    }
}
