using System.Text.RegularExpressions;
using Pipelines.Core.Definitions;
using Pipelines.Core.Planning;

namespace Pipelines.Scheduler.Schedules;

/// <summary>A schedule about to be created or changed through <see cref="ScheduleService"/>, already found valid.</summary>
public sealed record ScheduleDraft(ScheduleKey Key, ScheduleDefinition Definition, string QuartzCron, TimeZoneInfo Zone)
{
    /// <summary>The shortest time between two consecutive fires among the next <paramref name="fires"/> after <paramref name="from"/>; null when it fires at most once.</summary>
    public TimeSpan? ShortestInterval(DateTimeOffset from, int fires = 1000)
    {
        var times = CronSchedule.NextFireTimes(QuartzCron, Zone, from, fires);
        return times.Count < 2 ? null : times.Zip(times.Skip(1), (a, b) => b - a).Min();
    }
}

/// <summary>
/// An extra check on schedules created or changed through the API (not on the definition file, which
/// the operator owns): a policy of the deployment, such as a minimum interval. Register
/// implementations as <c>IScheduleRule</c> singletons; every one is applied.
/// </summary>
public interface IScheduleRule
{
    IEnumerable<ScheduleProblem> Check(ScheduleDraft draft, DateTimeOffset now);
}

/// <summary>Refuses schedules that would fire more often than once per <see cref="Minimum"/>.</summary>
public sealed class MinimumIntervalRule(TimeSpan minimum) : IScheduleRule
{
    public TimeSpan Minimum { get; } = minimum;

    public IEnumerable<ScheduleProblem> Check(ScheduleDraft draft, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(draft);
        if (draft.ShortestInterval(now) is { } shortest && shortest < Minimum)
        {
            yield return new ScheduleProblem("cron", $"'{draft.Definition.Cron}' fires every {shortest}; the shortest interval allowed is {Minimum}");
        }
    }
}

/// <summary>
/// The checks the definition loader applies to a schedule, for one that arrives through the API,
/// with each problem naming its JSON field rather than a file position.
/// </summary>
public static partial class ScheduleValidator
{
    public static IReadOnlyList<ScheduleProblem> Problems(PipelineCatalog catalog, string pipeline, ScheduleDefinition schedule, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(schedule);
        var problems = new List<ScheduleProblem>();
        var entry = catalog.Find(pipeline);
        if (entry is null)
        {
            problems.Add(new("pipeline", $"unknown pipeline '{pipeline}'" + Suggestions.DidYouMean(pipeline, catalog.Names)));
        }
        if (string.IsNullOrEmpty(schedule.Name))
        {
            problems.Add(new("name", "a schedule needs a name"));
        }
        else if (!NameRegex().IsMatch(schedule.Name))
        {
            problems.Add(new("name", $"'{schedule.Name}' is not a schedule name: 1-100 letters, digits, '_', '-' or '.', starting with a letter or digit"));
        }
        if (string.IsNullOrWhiteSpace(schedule.Cron))
        {
            problems.Add(new("cron", "a schedule needs a cron expression, e.g. '0 3 * * *' or '0 0 3 * * ?'"));
        }
        else if (!CronSchedule.TryNormalize(schedule.Cron, out var quartz, out var cronError))
        {
            problems.Add(new("cron", cronError));
        }
        else if (CronSchedule.NextFireTimes(quartz, TimeZoneInfo.Utc, now, 1).Count == 0)
        {
            problems.Add(new("cron", $"'{schedule.Cron}' has no fire time after {now:O}"));
        }
        if (string.IsNullOrWhiteSpace(schedule.Timezone))
        {
            problems.Add(new("timezone", "give an IANA time zone such as Europe/Berlin, or leave timezone out for UTC"));
        }
        else if (!CronSchedule.TryFindTimeZone(schedule.Timezone, out _, out var zoneError))
        {
            problems.Add(new("timezone", zoneError));
        }
        if (schedule.StartAt is { } start && schedule.EndAt is { } end && end <= start)
        {
            problems.Add(new("end_at", $"end_at ({end:O}) is not after start_at ({start:O})"));
        }
        else if (schedule.EndAt is { } endAt && endAt <= now)
        {
            problems.Add(new("end_at", $"end_at ({endAt:O}) has passed; the schedule would never fire"));
        }
        if (entry is not null)
        {
            foreach (var (key, message) in PipelineValidator.PayloadProblems(entry.Definition, schedule.Payload))
            {
                problems.Add(new(key is null ? "payload" : $"payload.{key}", message));
            }
        }
        return problems;
    }

    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")]
    private static partial Regex NameRegex();
}
