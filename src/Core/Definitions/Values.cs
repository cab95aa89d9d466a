using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace Pipelines.Core.Definitions;

/// <summary>A length of time written <c>500ms</c>, <c>30s</c>, <c>10m</c>, <c>1h</c>, <c>2d</c> or combined, <c>1h30m</c>.</summary>
public readonly partial record struct Duration(TimeSpan Value)
{
    public const string Pattern = "^([0-9]+(ms|s|m|h|d))+$";

    public static bool TryParse(string text, out Duration duration)
    {
        duration = default;
        if (!DurationRegex().IsMatch(text))
        {
            return false;
        }
        var total = TimeSpan.Zero;
        foreach (Match part in PartRegex().Matches(text))
        {
            if (!long.TryParse(part.Groups[1].ValueSpan, NumberStyles.None, CultureInfo.InvariantCulture, out var amount) || amount > 1_000_000_000)
            {
                return false;
            }
            total += part.Groups[2].Value switch
            {
                "ms" => TimeSpan.FromMilliseconds(amount),
                "s" => TimeSpan.FromSeconds(amount),
                "m" => TimeSpan.FromMinutes(amount),
                "h" => TimeSpan.FromHours(amount),
                _ => TimeSpan.FromDays(amount),
            };
        }
        duration = new Duration(total);
        return true;
    }

    public override string ToString()
    {
        if (Value == TimeSpan.Zero)
        {
            return "0s";
        }
        var text = new StringBuilder();
        var rest = Value;
        Append(ref rest, TimeSpan.FromDays(1), "d");
        Append(ref rest, TimeSpan.FromHours(1), "h");
        Append(ref rest, TimeSpan.FromMinutes(1), "m");
        Append(ref rest, TimeSpan.FromSeconds(1), "s");
        Append(ref rest, TimeSpan.FromMilliseconds(1), "ms");
        return text.ToString();

        void Append(ref TimeSpan remaining, TimeSpan unit, string suffix)
        {
            var count = remaining.Ticks / unit.Ticks;
            if (count > 0)
            {
                text.Append(count.ToString(CultureInfo.InvariantCulture)).Append(suffix);
                remaining -= TimeSpan.FromTicks(count * unit.Ticks);
            }
        }
    }

    [GeneratedRegex(Pattern)]
    private static partial Regex DurationRegex();

    [GeneratedRegex("([0-9]+)(ms|s|m|h|d)")]
    private static partial Regex PartRegex();
}

/// <summary>An amount of memory: <c>512m</c>, <c>1g</c>, <c>256Mi</c>, or a number of bytes. Units are binary (k = 1024).</summary>
public readonly partial record struct ByteSize(long Bytes)
{
    public const string Pattern = "^[0-9]+(\\.[0-9]+)?\\s*([bB]|[kKmMgGtT]([iI]?[bB]?))?$";

    public static bool TryParse(string text, out ByteSize size)
    {
        size = default;
        var match = SizeRegex().Match(text.Trim());
        if (!match.Success || !double.TryParse(match.Groups[1].Value, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var amount))
        {
            return false;
        }
        var unit = match.Groups[2].Value.ToUpperInvariant();
        double factor = unit.Length == 0 || unit == "B" ? 1 : unit[0] switch
        {
            'K' => 1L << 10,
            'M' => 1L << 20,
            'G' => 1L << 30,
            _ => 1L << 40,
        };
        var bytes = amount * factor;
        if (bytes > long.MaxValue / 2)
        {
            return false;
        }
        size = new ByteSize((long)bytes);
        return true;
    }

    public override string ToString() => Bytes switch
    {
        >= 1L << 30 when Bytes % (1L << 30) == 0 => $"{Bytes >> 30}g",
        >= 1L << 20 when Bytes % (1L << 20) == 0 => $"{Bytes >> 20}m",
        >= 1L << 10 when Bytes % (1L << 10) == 0 => $"{Bytes >> 10}k",
        _ => Bytes.ToString(CultureInfo.InvariantCulture),
    };

    [GeneratedRegex("^([0-9]+(?:\\.[0-9]+)?)\\s*([bB]|[kKmMgGtT](?:[iI]?[bB]?))?$")]
    private static partial Regex SizeRegex();
}

/// <summary>
/// A command or entrypoint: a list of arguments, or one string split the way a POSIX shell splits
/// words (quotes and backslashes honoured, nothing expanded). Arguments hold secret references as
/// <see cref="SecretText"/> does.
/// </summary>
public sealed record CommandLine(IReadOnlyList<string> Arguments)
{
    /// <summary>Splits literal text with references in it; a reference is part of the word it is written in, never split or unquoted.</summary>
    internal static bool TrySplit(IReadOnlyList<TextPart> parts, out List<IReadOnlyList<TextPart>> words, out string error)
    {
        // A reference reads as one '$' character for the rules below, so a backslash before it is dropped as before a '$'.
        var units = parts.SelectMany(p => p.IsSecret ? [new Unit('$', p.Text)] : p.Text.Select(c => new Unit(c, null))).ToArray();
        words = [];
        var current = new TextBuilder();
        var inWord = false;
        char? quote = null;
        for (var i = 0; i < units.Length; i++)
        {
            var unit = units[i];
            var c = unit.Secret is null ? unit.Char : '\0';
            if (quote is { } q)
            {
                if (c == q)
                {
                    quote = null;
                }
                else if (c == '\\' && q == '"' && i + 1 < units.Length && units[i + 1].Char is '"' or '\\' or '$' or '`')
                {
                    units[++i].AppendTo(current);
                }
                else
                {
                    unit.AppendTo(current);
                }
            }
            else if (c is '\'' or '"')
            {
                quote = c;
                inWord = true;
            }
            else if (c == '\\' && i + 1 < units.Length)
            {
                units[++i].AppendTo(current);
                inWord = true;
            }
            else if (char.IsWhiteSpace(c))
            {
                if (inWord)
                {
                    words.Add(current.Parts);
                    current = new TextBuilder();
                    inWord = false;
                }
            }
            else
            {
                unit.AppendTo(current);
                inWord = true;
            }
        }
        if (quote is not null)
        {
            words = [];
            error = $"the {quote} quote opened in the command is never closed";
            return false;
        }
        if (inWord)
        {
            words.Add(current.Parts);
        }
        error = "";
        return true;
    }

    public override string ToString() => string.Join(' ', Arguments.Select(a => a.Length == 0 || a.Any(char.IsWhiteSpace) ? $"'{a}'" : a));

    /// <summary>A character of a command string, or a whole secret reference.</summary>
    private readonly record struct Unit(char Char, string? Secret)
    {
        public void AppendTo(TextBuilder text)
        {
            if (Secret is null)
            {
                text.Append(Char);
            }
            else
            {
                text.AppendSecret(Secret);
            }
        }
    }
}

/// <summary>
/// A value that is a secret as a whole: a registry password, written <c>${NAME}</c> or <c>${secret:NAME}</c>.
/// Only the name is stored and sent; workers resolve the value at execution. References inside
/// <c>env</c>, <c>command</c> and <c>entrypoint</c> text are held as <see cref="SecretText"/> describes.
/// </summary>
public sealed record SecretReference(string Name)
{
    public override string ToString() => $"${{secret:{Name}}}";
}

/// <summary>
/// A volume mounted into a container: <c>SOURCE:TARGET[:ro|rw]</c>, where SOURCE is a host path
/// (absolute, or relative to the definition file) or the name of a Docker volume.
/// </summary>
public sealed record VolumeMount(string Source, string Target, bool ReadOnly)
{
    public bool IsHostPath => Source.StartsWith('/');

    public override string ToString() => $"{Source}:{Target}:{(ReadOnly ? "ro" : "rw")}";
}
