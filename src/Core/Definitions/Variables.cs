using Pipelines.Core.Definitions.Yaml;

namespace Pipelines.Core.Definitions;

/// <summary>
/// Substitutes <c>${VAR}</c> and <c>${VAR:-default}</c> (default when unset or empty) and
/// <c>${VAR-default}</c> (default when unset) from the process environment and an optional
/// <c>.env</c> file; a default may itself hold references (<c>${A:-${B}}</c>). <c>$$</c> is a literal
/// <c>$</c>, so <c>$${X}</c> reads <c>${X}</c>. <c>${secret:NAME}</c> is kept as a reference for workers
/// to resolve: secret values never enter a definition. A variable's value is literal text.
/// </summary>
internal sealed class VariableResolver(IReadOnlyDictionary<string, string> values, bool bareDollarNames, int maxNesting)
{
    public const string SecretPrefix = "secret:";

    private readonly IReadOnlyDictionary<string, string> _values = values;
    private readonly bool _bareDollarNames = bareDollarNames;
    private readonly int _maxNesting = maxNesting;

    /// <summary>
    /// Substitutes one scalar; reports each problem at its exact line and column. <paramref name="mentionsSecret"/>
    /// tells whether a <c>${secret:...}</c> is written in it, used or not.
    /// </summary>
    public TextBuilder Substitute(YamlTreeScalar scalar, string source, Action<SourcePosition, string> error, out bool mentionsSecret)
    {
        var text = new TextBuilder();
        mentionsSecret = false;
        if (!scalar.Value.Contains('$', StringComparison.Ordinal))
        {
            text.Append(scalar.Value);
            return text;
        }
        var expansion = new Expansion(this, scalar, source, error);
        expansion.Run(0, scalar.Value.Length, text, depth: 0);
        mentionsSecret = expansion.MentionsSecret;
        return text;
    }

    /// <summary>
    /// The name in a value that is only a reference — <c>${NAME}</c>, <c>${secret:NAME}</c>, or <c>$NAME</c>
    /// where bare names are read (copili) — or null for anything else, a literal password included.
    /// </summary>
    public string? SecretName(string text)
    {
        var name = text.StartsWith("${", StringComparison.Ordinal) && text.EndsWith('}') ? text[2..^1]
            : _bareDollarNames && text.StartsWith('$') ? text[1..]
            : null;
        if (name?.StartsWith(SecretPrefix, StringComparison.Ordinal) == true)
        {
            name = name[SecretPrefix.Length..];
        }
        return name is not null && IsName(name) ? name : null;
    }

    /// <summary>One scalar being substituted. Text is written to a builder; a null builder reads a default that is not used, for its errors.</summary>
    private sealed class Expansion(VariableResolver resolver, YamlTreeScalar scalar, string source, Action<SourcePosition, string> error)
    {
        private readonly string _text = scalar.Value;

        public bool MentionsSecret { get; private set; }

        public void Run(int start, int end, TextBuilder? output, int depth)
        {
            for (var i = start; i < end; i++)
            {
                var c = _text[i];
                var next = i + 1 < end ? _text[i + 1] : '\0';
                if (c != '$' || i + 1 >= end)
                {
                    output?.Append(c);
                }
                else if (next == '$')
                {
                    output?.Append('$');
                    i++;
                }
                else if (next == '{')
                {
                    var close = Close(i + 2, end);
                    if (close < 0)
                    {
                        error(At(i), "'${' is never closed with '}'");
                        return;
                    }
                    Reference(i, close, output, depth);
                    i = close;
                }
                else if (resolver._bareDollarNames && (char.IsAsciiLetter(next) || next == '_'))
                {
                    var nameEnd = i + 1;
                    while (nameEnd < end && (char.IsAsciiLetterOrDigit(_text[nameEnd]) || _text[nameEnd] == '_'))
                    {
                        nameEnd++;
                    }
                    Variable(i, _text[(i + 1)..nameEnd], output);
                    i = nameEnd - 1;
                }
                else
                {
                    output?.Append(c);
                }
            }
        }

        /// <summary>The '}' that closes the '${' before <paramref name="from"/>, past the references nested in a default.</summary>
        private int Close(int from, int end)
        {
            var open = 0;
            for (var i = from; i < end; i++)
            {
                if (_text[i] == '$' && i + 1 < end && _text[i + 1] is '$' or '{')
                {
                    open += _text[i + 1] == '{' ? 1 : 0;
                    i++;
                }
                else if (_text[i] == '}' && open-- == 0)
                {
                    return i;
                }
            }
            return -1;
        }

        /// <summary>The reference from the '$' at <paramref name="dollar"/> to the '}' at <paramref name="close"/>.</summary>
        private void Reference(int dollar, int close, TextBuilder? output, int depth)
        {
            var expression = _text[(dollar + 2)..close];
            if (expression.StartsWith(SecretPrefix, StringComparison.Ordinal))
            {
                var secret = expression[SecretPrefix.Length..];
                MentionsSecret = true;
                if (!IsName(secret))
                {
                    error(At(dollar), $"'{secret}' is not a valid secret name");
                    return;
                }
                output?.AppendSecret(secret);
                return;
            }
            var dash = expression.IndexOf('-', StringComparison.Ordinal);
            var whenEmpty = dash > 0 && expression[dash - 1] == ':';
            var name = dash > 0 ? expression[..(whenEmpty ? dash - 1 : dash)] : expression;
            if (!IsName(name))
            {
                error(At(dollar), $"'${{{expression}}}' is not a variable reference; write ${{NAME}}, ${{NAME:-default}} or $${{...}} for a literal");
                return;
            }
            if (dash <= 0)
            {
                Variable(dollar, name, output);
                return;
            }
            if (depth == resolver._maxNesting)
            {
                error(At(dollar), $"'${{{name}...}}' nests defaults more than {resolver._maxNesting} levels deep");
                return;
            }
            var isSet = resolver._values.TryGetValue(name, out var value) && !(whenEmpty && value!.Length == 0);
            if (isSet)
            {
                output?.Append(value!);
            }
            // A default that is not used is still read, for its mistakes; its unset variables are no error.
            Run(dollar + 2 + dash + 1, close, isSet ? null : output, depth + 1);
        }

        private void Variable(int dollar, string name, TextBuilder? output)
        {
            if (resolver._values.TryGetValue(name, out var value))
            {
                output?.Append(value);
            }
            else if (output is not null)
            {
                error(At(dollar), $"variable '{name}' is not set and has no default (set it in the environment or .env, or write ${{{name}:-default}})");
            }
        }

        private SourcePosition At(int offset) => PositionOf(scalar, source, _text, offset);
    }

    private static bool IsName(string name) =>
        name.Length > 0 && (char.IsAsciiLetter(name[0]) || name[0] == '_') && name.All(c => char.IsAsciiLetterOrDigit(c) || c == '_');

    /// <summary>
    /// Position of the <paramref name="offset"/>-th character of a scalar's value. Exact for plain and
    /// quoted scalars, which keep their text as written; block scalars fall back to the scalar's start.
    /// </summary>
    private static SourcePosition PositionOf(YamlTreeScalar scalar, string source, string value, int offset)
    {
        var raw = scalar.EndIndex <= source.Length && scalar.StartIndex < scalar.EndIndex
            ? source[scalar.StartIndex..scalar.EndIndex]
            : "";
        // Find the same reference in the raw text: the n-th '$' of the value is the n-th '$' of the raw text.
        var dollarIndex = value[..offset].Count(ch => ch == '$');
        var rawOffset = -1;
        for (int i = 0, seen = 0; i < raw.Length; i++)
        {
            if (raw[i] == '$' && seen++ == dollarIndex)
            {
                rawOffset = i;
                break;
            }
        }
        if (rawOffset < 0)
        {
            return scalar.Start;
        }
        var line = scalar.Start.Line;
        var column = scalar.Start.Column;
        for (var i = 0; i < rawOffset; i++)
        {
            if (raw[i] == '\n')
            {
                line++;
                column = 1;
            }
            else
            {
                column++;
            }
        }
        return new SourcePosition(line, column);
    }
}

/// <summary>Reads a <c>.env</c> file: <c>KEY=VALUE</c> lines, <c>#</c> comments, optional quotes and <c>export</c>.</summary>
public static class DotEnvFile
{
    public static Dictionary<string, string> Read(string path)
    {
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        if (!File.Exists(path))
        {
            return values;
        }
        foreach (var rawLine in File.ReadAllLines(path))
        {
            var line = rawLine.Trim();
            if (line.Length == 0 || line[0] == '#')
            {
                continue;
            }
            if (line.StartsWith("export ", StringComparison.Ordinal))
            {
                line = line[7..].TrimStart();
            }
            var equals = line.IndexOf('=', StringComparison.Ordinal);
            if (equals <= 0)
            {
                continue;
            }
            var key = line[..equals].Trim();
            var value = line[(equals + 1)..].Trim();
            if (value.Length >= 2 && value[0] is '"' or '\'' && value[^1] == value[0])
            {
                value = value[1..^1];
            }
            values[key] = value;
        }
        return values;
    }
}
