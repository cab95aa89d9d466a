using System.Globalization;
using Quartz;

namespace Pipelines.Core.Definitions;

/// <summary>
/// Cron expressions: Quartz's form with seconds (<c>0 0 3 * * ?</c>), the common 5-field form
/// (<c>0 3 * * *</c>, Sunday = 0 or 7) and the macros <c>@hourly</c>, <c>@daily</c>, <c>@midnight</c>,
/// <c>@weekly</c>, <c>@monthly</c>, <c>@yearly</c>. Everything is normalised to Quartz's form.
/// </summary>
public static class CronSchedule
{
    private static readonly Dictionary<string, string> Macros = new(StringComparer.OrdinalIgnoreCase)
    {
        ["@yearly"] = "0 0 0 1 1 ?",
        ["@annually"] = "0 0 0 1 1 ?",
        ["@monthly"] = "0 0 0 1 * ?",
        ["@weekly"] = "0 0 0 ? * SUN",
        ["@daily"] = "0 0 0 * * ?",
        ["@midnight"] = "0 0 0 * * ?",
        ["@hourly"] = "0 0 * * * ?",
    };

    public static bool TryNormalize(string expression, out string quartz, out string error)
    {
        quartz = "";
        error = "";
        var text = expression.Trim();
        if (Macros.TryGetValue(text, out var macro))
        {
            quartz = macro;
            return true;
        }
        if (text.StartsWith('@'))
        {
            error = $"unknown cron macro '{text}'; use one of {string.Join(", ", Macros.Keys)}" + Suggestions.DidYouMean(text, Macros.Keys).Replace(";", ",", StringComparison.Ordinal);
            return false;
        }
        var fields = text.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        switch (fields.Length)
        {
            case 5:
                if (!TryFromFiveFields(fields, out quartz, out error))
                {
                    return false;
                }
                break;
            case 6 or 7:
                quartz = string.Join(' ', fields);
                break;
            default:
                error = $"cron expression '{text}' has {fields.Length} fields; expected 5 (minute hour day month weekday) or 6-7 (Quartz, with seconds)";
                return false;
        }
        try
        {
            _ = new CronExpression(quartz);
            return true;
        }
        catch (FormatException e)
        {
            error = $"invalid cron expression '{text}': {e.Message.TrimEnd('.')}";
            return false;
        }
    }

    /// <summary>The next fire times after <paramref name="after"/>, at most <paramref name="count"/>.</summary>
    public static IReadOnlyList<DateTimeOffset> NextFireTimes(string quartzExpression, TimeZoneInfo zone, DateTimeOffset after, int count)
    {
        var cron = new CronExpression(quartzExpression, zone);
        var times = new List<DateTimeOffset>(count);
        var cursor = after;
        while (times.Count < count && cron.GetNextValidTimeAfter(cursor) is { } next)
        {
            times.Add(next);
            cursor = next;
        }
        return times;
    }

    public static bool TryFindTimeZone(string name, out TimeZoneInfo zone, out string error)
    {
        error = "";
        if (TimeZoneInfo.TryFindSystemTimeZoneById(name, out zone!))
        {
            return true;
        }
        error = $"unknown time zone '{name}'; use an IANA name such as Europe/Berlin" + Suggestions.DidYouMean(name, ZoneNames.Value).Replace(";", ",", StringComparison.Ordinal);
        return false;
    }

    private static readonly Lazy<IReadOnlyList<string>> ZoneNames = new(ReadZoneNames);

    /// <summary>
    /// The names to suggest from. Where the IANA database is a folder (Linux, macOS), its file names
    /// are the zone names: listing them takes milliseconds, where <see cref="TimeZoneInfo.GetSystemTimeZones()"/>
    /// parses every zone (a quarter of a second, which a one-shot <c>validate</c> would pay).
    /// </summary>
    private static IReadOnlyList<string> ReadZoneNames()
    {
        var folder = Environment.GetEnvironmentVariable("TZDIR") is { Length: > 0 } tzdir ? tzdir : "/usr/share/zoneinfo";
        if (!Directory.Exists(folder))
        {
            return [.. TimeZoneInfo.GetSystemTimeZones().Select(z => z.Id).Append("UTC")];
        }
        return
        [
            .. Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories)
                .Select(path => Path.GetRelativePath(folder, path).Replace(Path.DirectorySeparatorChar, '/'))
                .Where(IsZoneName)
                .Order(StringComparer.Ordinal),
        ];
    }

    // Leaves out the database's own files (zone.tab, tzdata.zi, leapseconds, ...) and its
    // duplicate trees (posix/, right/).
    private static bool IsZoneName(string relativePath) =>
        char.IsAsciiLetterUpper(relativePath[0])
        && !relativePath.Contains('.', StringComparison.Ordinal)
        && !relativePath.StartsWith("posix", StringComparison.Ordinal)
        && !relativePath.StartsWith("right/", StringComparison.Ordinal)
        && relativePath != "Factory";

    private static bool TryFromFiveFields(string[] fields, out string quartz, out string error)
    {
        quartz = "";
        error = "";
        var (minute, hour, dayOfMonth, month, dayOfWeek) = (fields[0], fields[1], fields[2], fields[3], fields[4]);
        var domRestricted = dayOfMonth is not ("*" or "?");
        var dowRestricted = dayOfWeek is not ("*" or "?");
        if (domRestricted && dowRestricted)
        {
            error = $"cron expression '{string.Join(' ', fields)}' restricts both day of month and day of week; " +
                    "write it in Quartz's 6-field form with '?' in one of them";
            return false;
        }
        dayOfMonth = dowRestricted ? "?" : domRestricted ? dayOfMonth : "*";
        dayOfWeek = dowRestricted ? ShiftWeekdays(dayOfWeek) : "?";
        quartz = $"0 {minute} {hour} {dayOfMonth} {month} {dayOfWeek}";
        return true;
    }

    /// <summary>Unix weekdays count Sunday as 0 (or 7); Quartz counts it as 1.</summary>
    private static string ShiftWeekdays(string field)
    {
        var result = new System.Text.StringBuilder(field.Length);
        for (var i = 0; i < field.Length; i++)
        {
            if (char.IsAsciiDigit(field[i]) && (i == 0 || field[i - 1] != '/') && (i == 0 || field[i - 1] != '#'))
            {
                var start = i;
                while (i + 1 < field.Length && char.IsAsciiDigit(field[i + 1]))
                {
                    i++;
                }
                var day = int.Parse(field.AsSpan(start, i - start + 1), CultureInfo.InvariantCulture);
                result.Append(day <= 7 ? (day % 7 + 1).ToString(CultureInfo.InvariantCulture) : field[start..(i + 1)]);
            }
            else
            {
                result.Append(field[i]);
            }
        }
        return result.ToString();
    }
}
