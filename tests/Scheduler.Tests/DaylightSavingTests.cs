using Pipelines.Core.Definitions;
using Pipelines.Scheduler.Schedules;
using Microsoft.Extensions.Time.Testing;

namespace Pipelines.Scheduler.Tests;

/// <summary>
/// Fire times across Europe/Berlin's transitions in 2026, from the trigger the scheduler stores
/// (docs/scheduler.md states the rule): 29 March 02:00 CET jumps to 03:00 CEST; 25 October 03:00 CEST
/// falls back to 02:00 CET, so 02:00-02:59 happens twice.
/// </summary>
public sealed class DaylightSavingTests
{
    private static readonly TimeZoneInfo Berlin = TimeZoneInfo.FindSystemTimeZoneById("Europe/Berlin");

    private static List<string> LocalFireTimes(string cron, DateTime localFrom, DateTime localTo)
    {
        // A second early, so that a fire at localFrom itself is listed.
        var from = new DateTimeOffset(localFrom, Berlin.GetUtcOffset(localFrom)).AddSeconds(-1);
        var clock = new FakeTimeProvider(from);
        var schedule = StoredSchedule.From(new ScheduleDefinition { Name = "dst", Cron = cron, Timezone = "Europe/Berlin" }, ScheduleSource.Api);
        var trigger = ScheduleTriggers.CronTrigger(new ScheduleKey("report", "dst"), schedule, clock)!;
        var to = new DateTimeOffset(localTo, Berlin.GetUtcOffset(localTo));
        return [.. ScheduleTriggers.NextFireTimes(trigger, nextFireTime: null, from, 200)
            .TakeWhile(t => t < to)
            .Select(t => TimeZoneInfo.ConvertTime(t, Berlin).ToString("MM-dd HH:mmzzz", System.Globalization.CultureInfo.InvariantCulture))];
    }

    [Fact]
    public void spring_forward_moves_a_fire_in_the_skipped_hour_to_three_oclock_and_skips_no_day()
    {
        Assert.Equal(
            ["03-28 02:30+01:00", "03-29 03:00+02:00", "03-30 02:30+02:00"],
            LocalFireTimes("30 2 * * *", new DateTime(2026, 3, 28), new DateTime(2026, 3, 31)));
    }

    [Fact]
    public void spring_forward_gives_an_hourly_schedule_twenty_three_fires_none_doubled()
    {
        var fires = LocalFireTimes("0 * * * *", new DateTime(2026, 3, 29), new DateTime(2026, 3, 30));
        Assert.Equal(23, fires.Count);
        Assert.Equal(["03-29 00:00+01:00", "03-29 01:00+01:00", "03-29 03:00+02:00", "03-29 04:00+02:00"], fires.Take(4));
        Assert.Equal(fires.Count, fires.Distinct().Count());
    }

    [Fact]
    public void fall_back_fires_a_fixed_time_schedule_once_at_the_first_occurrence()
    {
        Assert.Equal(
            ["10-24 02:30+02:00", "10-25 02:30+02:00", "10-26 02:30+01:00"],
            LocalFireTimes("30 2 * * *", new DateTime(2026, 10, 24), new DateTime(2026, 10, 27)));
        Assert.Equal(
            ["10-25 02:00+02:00", "10-25 02:30+02:00", "10-26 02:00+01:00", "10-26 02:30+01:00"],
            LocalFireTimes("0 0,30 2 * * ?", new DateTime(2026, 10, 25), new DateTime(2026, 10, 27)));
    }

    [Fact]
    public void fall_back_fires_an_interval_schedule_in_both_occurrences_of_the_repeated_hour()
    {
        var hourly = LocalFireTimes("0 * * * *", new DateTime(2026, 10, 25), new DateTime(2026, 10, 26));
        Assert.Equal(25, hourly.Count);
        Assert.Equal(["10-25 01:00+02:00", "10-25 02:00+02:00", "10-25 02:00+01:00", "10-25 03:00+01:00"], hourly.Skip(1).Take(4));

        Assert.Equal(
            ["10-25 02:00+02:00", "10-25 02:30+02:00", "10-25 02:00+01:00", "10-25 02:30+01:00"],
            LocalFireTimes("*/30 2 * * *", new DateTime(2026, 10, 25), new DateTime(2026, 10, 26)));
        // A range is an interval too: 1-3 fires 02:30 twice, the list 1,2,3 once.
        Assert.Equal(4, LocalFireTimes("30 1-3 * * *", new DateTime(2026, 10, 25), new DateTime(2026, 10, 26)).Count);
        Assert.Equal(3, LocalFireTimes("30 1,2,3 * * *", new DateTime(2026, 10, 25), new DateTime(2026, 10, 26)).Count);
    }
}
