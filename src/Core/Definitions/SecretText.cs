using System.Text;
using System.Text.RegularExpressions;

namespace Pipelines.Core.Definitions;

/// <summary>
/// How <c>env</c> values and <c>command</c> and <c>entrypoint</c> arguments hold secret references once
/// loaded: <c>${secret:NAME}</c> is a reference the worker resolves. Where literal <c>$</c> characters
/// come right before <c>{secret:NAME}</c>, each is written <c>$$</c>, so a run of n dollars before it
/// stands for n/2 literal dollars, followed by a reference when n is odd and by the literal text
/// <c>{secret:NAME}</c> when n is even. A literal <c>${secret:X}</c> (written <c>$${secret:X}</c>
/// in the file) therefore stays <c>$${secret:X}</c>; every other <c>$</c> is kept as it is.
/// </summary>
public static partial class SecretText
{
    /// <summary>
    /// <paramref name="text"/> with each reference replaced by <paramref name="secret"/>(NAME) and each
    /// escaped literal unescaped: what the container is given.
    /// </summary>
    public static string Resolve(string text, Func<string, string> secret)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentNullException.ThrowIfNull(secret);
        return Reference().Replace(text, match =>
        {
            var dollars = match.Groups["dollars"].Length;
            var name = match.Groups["name"].Value;
            var literal = new string('$', dollars / 2);
            return dollars % 2 == 1 ? literal + secret(name) : $"{literal}{{secret:{name}}}";
        });
    }

    /// <summary>The names of the secrets <paramref name="text"/> refers to, in order, repeats included.</summary>
    public static IEnumerable<string> Names(string text) =>
        Reference().Matches(text).Where(m => m.Groups["dollars"].Length % 2 == 1).Select(m => m.Groups["name"].Value);

    /// <summary>Writes literal text and references (<see cref="TextPart.IsSecret"/>) in the form above.</summary>
    internal static string Encode(IReadOnlyList<TextPart> parts)
    {
        var literal = new StringBuilder();
        var text = new StringBuilder();
        foreach (var part in parts)
        {
            if (part.IsSecret)
            {
                AppendLiteral(text, literal.ToString(), beforeReference: true);
                literal.Clear();
                text.Append("${").Append(VariableResolver.SecretPrefix).Append(part.Text).Append('}');
            }
            else
            {
                literal.Append(part.Text);
            }
        }
        AppendLiteral(text, literal.ToString(), beforeReference: false);
        return text.ToString();
    }

    /// <summary>Doubles the dollars that come right before a literal <c>{secret:NAME}</c>, or before the reference that follows.</summary>
    private static void AppendLiteral(StringBuilder text, string literal, bool beforeReference)
    {
        var escaped = Reference().Replace(literal, m => m.Groups["dollars"].Value + m.Value);
        if (beforeReference)
        {
            var trailing = escaped.Length - escaped.TrimEnd('$').Length;
            escaped += new string('$', trailing);
        }
        text.Append(escaped);
    }

    [GeneratedRegex(@"(?<dollars>\$+)\{secret:(?<name>[A-Za-z_][A-Za-z0-9_]*)\}")]
    private static partial Regex Reference();
}

/// <summary>A piece of a value: literal text, or the name of a secret.</summary>
internal readonly record struct TextPart(string Text, bool IsSecret)
{
    public static TextPart Literal(string text) => new(text, false);

    public static TextPart Secret(string name) => new(name, true);
}

/// <summary>Collects a value as literal text and secret references, merging adjacent literal text.</summary>
internal sealed class TextBuilder
{
    private readonly List<TextPart> _parts = [];
    private readonly StringBuilder _literal = new();

    public void Append(char c) => _literal.Append(c);

    public void Append(string text) => _literal.Append(text);

    public void AppendSecret(string name)
    {
        Flush();
        _parts.Add(TextPart.Secret(name));
    }

    public IReadOnlyList<TextPart> Parts
    {
        get
        {
            Flush();
            return [.. _parts];
        }
    }

    /// <summary>The value as <see cref="SecretText"/>: for the fields whose references workers resolve.</summary>
    public string Encoded => SecretText.Encode(Parts);

    /// <summary>The value as plain text, a reference written <c>${secret:NAME}</c>: for fields that hold none.</summary>
    public string Plain => string.Concat(Parts.Select(p => p.IsSecret ? $"${{{VariableResolver.SecretPrefix}{p.Text}}}" : p.Text));

    private void Flush()
    {
        if (_literal.Length > 0)
        {
            _parts.Add(TextPart.Literal(_literal.ToString()));
            _literal.Clear();
        }
    }
}
