using System.Text;
using Pipelines.Core.Definitions.Yaml;

namespace Pipelines.Core.Definitions;

/// <summary>
/// Substitutes <c>${VAR}</c> and <c>${VAR:-default}</c> (default when unset or empty) and
/// <c>${VAR-default}</c> (default when unset) from the process environment and an optional
/// <c>.env</c> file; <c>$$</c> is a literal <c>$</c>, so <c>$${X}</c> reads <c>${X}</c>.
/// <c>${secret:NAME}</c> is left in place for workers to resolve: secret values never enter a definition.
/// </summary>
internal sealed class VariableResolver(IReadOnlyDictionary<string, string> values, bool bareDollarNames)
{
    public const string SecretPrefix = "secret:";

    /// <summary>Substitutes one scalar; reports each problem at its exact line and column.</summary>
    public string Substitute(YamlTreeScalar scalar, string source, Action<SourcePosition, string> error, out bool hasSecret)
    {
        hasSecret = false;
        var text = scalar.Value;
        if (!text.Contains('$', StringComparison.Ordinal))
        {
            return text;
        }
        var result = new StringBuilder(text.Length);
        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            if (c != '$' || i + 1 >= text.Length)
            {
                result.Append(c);
                continue;
            }
            var next = text[i + 1];
            if (next == '$')
            {
                result.Append('$');
                i++;
            }
            else if (next == '{')
            {
                var close = text.IndexOf('}', i + 2);
                if (close < 0)
                {
                    error(PositionOf(scalar, source, text, i), "'${' is never closed with '}'");
                    return text;
                }
                var expression = text[(i + 2)..close];
                if (expression.StartsWith(SecretPrefix, StringComparison.Ordinal))
                {
                    var name = expression[SecretPrefix.Length..];
                    if (!IsName(name))
                    {
                        error(PositionOf(scalar, source, text, i), $"'{name}' is not a valid secret name");
                    }
                    hasSecret = true;
                    result.Append(text, i, close - i + 1);
                }
                else
                {
                    result.Append(Expand(expression, () => PositionOf(scalar, source, text, i), error));
                }
                i = close;
            }
            else if (bareDollarNames && (char.IsAsciiLetter(next) || next == '_'))
            {
                var end = i + 1;
                while (end < text.Length && (char.IsAsciiLetterOrDigit(text[end]) || text[end] == '_'))
                {
                    end++;
                }
                result.Append(Expand(text[(i + 1)..end], () => PositionOf(scalar, source, text, i), error));
                i = end - 1;
            }
            else
            {
                result.Append(c);
            }
        }
        return result.ToString();
    }

    /// <summary>
    /// The name in a value that is only a reference — <c>${NAME}</c>, <c>${secret:NAME}</c>, or <c>$NAME</c>
    /// where bare names are read (copili) — or null for anything else, a literal password included.
    /// </summary>
    public string? SecretName(string text)
    {
        var name = text.StartsWith("${", StringComparison.Ordinal) && text.EndsWith('}') ? text[2..^1]
            : bareDollarNames && text.StartsWith('$') ? text[1..]
            : null;
        if (name?.StartsWith(SecretPrefix, StringComparison.Ordinal) == true)
        {
            name = name[SecretPrefix.Length..];
        }
        return name is not null && IsName(name) ? name : null;
    }

    private string Expand(string expression, Func<SourcePosition> at, Action<SourcePosition, string> error)
    {
        var name = expression;
        string? fallback = null;
        var fallbackWhenEmpty = false;
        var dash = expression.IndexOf('-', StringComparison.Ordinal);
        if (dash > 0)
        {
            fallbackWhenEmpty = expression[dash - 1] == ':';
            name = expression[..(fallbackWhenEmpty ? dash - 1 : dash)];
            fallback = expression[(dash + 1)..];
        }
        if (!IsName(name))
        {
            error(at(), $"'${{{expression}}}' is not a variable reference; write ${{NAME}}, ${{NAME:-default}} or $${{...}} for a literal");
            return "";
        }
        if (values.TryGetValue(name, out var value) && !(fallbackWhenEmpty && value.Length == 0))
        {
            return value;
        }
        if (fallback is not null)
        {
            return fallback;
        }
        error(at(), $"variable '{name}' is not set and has no default (set it in the environment or .env, or write ${{{name}:-default}})");
        return "";
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
