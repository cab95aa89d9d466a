using System.Text.Json.Nodes;
using Pipelines.Core.Definitions;
using Pipelines.Scheduler.Schedules;

namespace Pipelines.Scheduler.Tests;

/// <summary>The checks a schedule from the API gets; no database needed.</summary>
public sealed class ValidationTests
{
    private static readonly DateTimeOffset Now = new(2026, 6, 1, 12, 0, 0, TimeSpan.Zero);
    private static readonly Core.Planning.PipelineCatalog Catalog = SchedulerTestHost.Catalog(Pipelines.Report);

    private static IReadOnlyList<ScheduleProblem> Problems(ScheduleDefinition schedule, string pipeline = "report") =>
        ScheduleValidator.Problems(Catalog, pipeline, schedule, Now);

    [Theory]
    [InlineData("0 3 * * *")]
    [InlineData("0 0 3 * * ?")]
    [InlineData("@daily")]
    [InlineData("*/15 9-17 * * 1-5")]
    public void valid_cron_in_either_form_has_no_problem(string cron) =>
        Assert.Empty(Problems(new ScheduleDefinition { Name = "ok", Cron = cron, Timezone = "Europe/Berlin" }));

    [Theory]
    [InlineData("0 25 * * *", "invalid cron expression '0 25 * * *'")]
    [InlineData("0 3 * *", "cron expression '0 3 * *' has 4 fields; expected 5 (minute hour day month weekday) or 6-7 (Quartz, with seconds)")]
    [InlineData("@dayly", "unknown cron macro '@dayly'")]
    [InlineData("0 0 0 1 1 ? 2020", "'0 0 0 1 1 ? 2020' has no fire time after 2026-06-01T12:00:00.0000000+00:00")]
    public void invalid_cron_is_refused_naming_the_cron_field(string cron, string message)
    {
        var problem = Assert.Single(Problems(new ScheduleDefinition { Name = "bad", Cron = cron }));
        Assert.Equal("cron", problem.Field);
        Assert.StartsWith(message, problem.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void unknown_time_zone_is_refused_with_a_suggestion()
    {
        var problem = Assert.Single(Problems(new ScheduleDefinition { Name = "bad", Cron = "0 3 * * *", Timezone = "Europe/Berln" }));
        Assert.Equal(new ScheduleProblem("timezone", "unknown time zone 'Europe/Berln'; use an IANA name such as Europe/Berlin, did you mean 'Europe/Berlin'?"), problem);
    }

    [Fact]
    public void a_null_time_zone_from_json_is_refused_not_thrown()
    {
        var problem = Assert.Single(Problems(new ScheduleDefinition { Name = "tz", Cron = "0 3 * * *", Timezone = null! }));
        Assert.Equal("timezone", problem.Field);
    }

    [Fact]
    public void every_problem_is_reported_at_once_each_with_its_field()
    {
        var problems = Problems(new ScheduleDefinition
        {
            Name = "no spaces",
            Cron = "",
            StartAt = Now.AddDays(2),
            EndAt = Now.AddDays(1),
            Payload = new JsonObject { ["day"] = true },
        }, pipeline: "reprot");
        Assert.Equal(["pipeline", "name", "cron", "end_at"], problems.Select(p => p.Field));
        Assert.Equal("unknown pipeline 'reprot'; did you mean 'report'?", problems[0].Message);
    }

    [Fact]
    public void payload_is_checked_against_the_pipeline_parameters()
    {
        var problem = Assert.Single(Problems(new ScheduleDefinition { Name = "p", Cron = "0 3 * * *", Payload = new JsonObject { ["day"] = 3 } }));
        Assert.Equal(new ScheduleProblem("payload.day", "parameter 'day' must be a string, got 3"), problem);
    }

    [Fact]
    public void minimum_interval_rule_refuses_a_schedule_that_fires_too_often()
    {
        var rule = new MinimumIntervalRule(TimeSpan.FromMinutes(5));
        ScheduleDraft Draft(string cron)
        {
            CronSchedule.TryNormalize(cron, out var quartz, out _);
            return new ScheduleDraft(new ScheduleKey("report", "r"), new ScheduleDefinition { Name = "r", Cron = cron }, quartz, TimeZoneInfo.Utc);
        }

        Assert.Empty(rule.Check(Draft("*/5 * * * *"), Now));
        Assert.Empty(rule.Check(Draft("0 3 * * *"), Now));
        var problem = Assert.Single(rule.Check(Draft("*/30 * * * * ?"), Now));
        Assert.Equal(new ScheduleProblem("cron", "'*/30 * * * * ?' fires every 00:00:30; the shortest interval allowed is 00:05:00"), problem);
        // Bursts count too: every minute from 09:00 to 09:04 only.
        Assert.Single(rule.Check(Draft("0-4 9 * * *"), Now));
    }
}
