using System.Net;
using System.Net.Http.Json;
using Pipelines.Api.Tests.Infrastructure;
using Pipelines.Client;
using Pipelines.Core.Definitions;
using Pipelines.Scheduler.Schedules;

namespace Pipelines.Api.Tests;

public sealed class ScheduleEndpointsTests(ApiFactory factory) : IClassFixture<ApiFactory>
{
    private readonly PipelinesClient _client = factory.Client();
    private readonly HttpClient _http = factory.Http();

    private static ScheduleSpec Hourly(string name) => new()
    {
        Pipeline = "echo",
        Name = name,
        Cron = "0 * * * *",
        Timezone = "Europe/Berlin",
        Payload = new() { ["name"] = "cron" },
    };

    [Fact]
    public async Task A_created_schedule_answers_201_with_its_next_fire_times()
    {
        var response = await _http.PostAsJsonAsync("/api/v1/schedules", Hourly("created"), PipelinesJson.Options);

        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        Assert.Equal("/api/v1/schedules/echo/created", response.Headers.Location?.OriginalString);
        var schedule = (await response.Content.ReadFromJsonAsync<Schedule>(PipelinesJson.Options))!;
        Assert.Equal(ScheduleState.Active, schedule.State);
        Assert.Equal(ScheduleSource.Api, schedule.Source);
        Assert.Equal(5, schedule.NextFireTimes.Count);
        Assert.All(schedule.NextFireTimes, t => Assert.Equal(0, t.Minute));
        Assert.Equal(MisfirePolicy.FireOnce, schedule.Misfire);
        Assert.Equal("cron", schedule.Payload!["name"]!.GetValue<string>());
        var again = await _http.PostAsJsonAsync("/api/v1/schedules", Hourly("created"), PipelinesJson.Options);
        await again.AssertProblemAsync(HttpStatusCode.Conflict, "name");
    }

    [Theory]
    [InlineData("{\"pipeline\":\"echo\",\"name\":\"a\",\"cron\":\"61 * * * *\"}", "cron")]
    [InlineData("{\"pipeline\":\"sleepy\",\"name\":\"a\",\"cron\":\"* * * * * ?\"}", "cron")]
    [InlineData("{\"pipeline\":\"echo\",\"name\":\"a\",\"cron\":\"0 * * * *\",\"timezone\":\"Mars/Olympus\"}", "timezone")]
    [InlineData("{\"pipeline\":\"echo\",\"name\":\"a\",\"cron\":\"0 * * * *\",\"payload\":{\"name\":5}}", "payload.name")]
    [InlineData("{\"pipeline\":\"nope\",\"name\":\"a\",\"cron\":\"0 * * * *\"}", "pipeline")]
    [InlineData("{\"name\":\"a\",\"cron\":\"0 * * * *\"}", "pipeline")]
    [InlineData("{\"pipeline\":\"echo\",\"cron\":\"0 * * * *\"}", "name")]
    [InlineData("{\"pipeline\":\"echo\",\"name\":\"a b\",\"cron\":\"0 * * * *\"}", "name")]
    [InlineData("{\"pipeline\":\"echo\",\"name\":\"a\",\"cron\":\"0 * * * *\",\"end_at\":\"2020-01-01T00:00:00Z\"}", "end_at")]
    public async Task An_invalid_schedule_answers_422_naming_the_field(string body, string field)
    {
        var response = await _http.PostTextAsync("/api/v1/schedules", body);

        await response.AssertProblemAsync(HttpStatusCode.UnprocessableEntity, field);
    }

    [Theory]
    [InlineData("{\"pipeline\":\"echo\",\"name\":\"a\",\"cron\":\"0 * * * *\",\"misfire\":\"later\"}", "misfire")]
    [InlineData("{\"pipeline\":\"echo\",\"name\":\"a\",\"cron\":\"0 * * * *\",\"enabled\":\"yes\"}", "enabled")]
    [InlineData("{\"pipeline\":\"echo\",\"name\":\"a\",\"cron\":\"0 * * * *\",\"start_at\":\"soon\"}", "start_at")]
    [InlineData("{\"pipeline\":\"echo\",\"name\":\"a\",\"cron\":0}", "cron")]
    public async Task A_schedule_field_of_the_wrong_type_answers_400_naming_it(string body, string field)
    {
        var problem = await (await _http.PostTextAsync("/api/v1/schedules", body)).AssertProblemAsync(HttpStatusCode.BadRequest, field);

        if (field == "misfire")
        {
            Assert.Contains("fire_once, skip", problem.Detail, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task The_minimum_interval_applies_to_schedules_from_the_api()
    {
        var problem = await (await _http.PostAsJsonAsync("/api/v1/schedules", Hourly("fast") with { Cron = "*/10 * * * * ?" }, PipelinesJson.Options))
            .AssertProblemAsync(HttpStatusCode.UnprocessableEntity, "cron");

        Assert.Contains("00:01:00", problem.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_schedule_is_read_updated_paused_resumed_and_deleted()
    {
        await _client.CreateScheduleAsync(Hourly("lifecycle"));

        var read = await _client.GetScheduleAsync("echo", "lifecycle");
        var updated = await _client.UpdateScheduleAsync("echo", "lifecycle", new ScheduleSpec { Cron = "30 4 * * *", Payload = new() { ["name"] = "later" } });
        var paused = await _client.PauseScheduleAsync("echo", "lifecycle");
        var resumed = await _client.ResumeScheduleAsync("echo", "lifecycle");
        await _client.DeleteScheduleAsync("echo", "lifecycle");

        Assert.Equal("0 * * * *", read.Cron);
        Assert.Equal("30 4 * * *", updated.Cron);
        Assert.Equal("UTC", updated.Timezone);
        Assert.All(updated.NextFireTimes, t => Assert.Equal((4, 30), (t.Hour, t.Minute)));
        Assert.Equal(ScheduleState.Paused, paused.State);
        Assert.False(paused.Enabled);
        Assert.Empty(paused.NextFireTimes);
        Assert.Equal(ScheduleState.Active, resumed.State);
        Assert.NotEmpty(resumed.NextFireTimes);
        await (await _http.GetAsync("/api/v1/schedules/echo/lifecycle")).AssertProblemAsync(HttpStatusCode.NotFound, "name");
        await (await _http.DeleteAsync("/api/v1/schedules/echo/lifecycle")).AssertProblemAsync(HttpStatusCode.NotFound, "name");
        await (await _http.PostAsync("/api/v1/schedules/echo/lifecycle/pause", null)).AssertProblemAsync(HttpStatusCode.NotFound, "name");
    }

    [Fact]
    public async Task An_update_may_not_rename_or_move_a_schedule()
    {
        await _client.CreateScheduleAsync(Hourly("fixed"));

        await (await _http.PutAsJsonAsync("/api/v1/schedules/echo/fixed", new ScheduleSpec { Name = "other", Cron = "0 * * * *" }, PipelinesJson.Options))
            .AssertProblemAsync(HttpStatusCode.UnprocessableEntity, "name");
        await (await _http.PutAsJsonAsync("/api/v1/schedules/echo/fixed", new ScheduleSpec { Pipeline = "sleepy", Cron = "0 * * * *" }, PipelinesJson.Options))
            .AssertProblemAsync(HttpStatusCode.UnprocessableEntity, "pipeline");
        await (await _http.PutAsJsonAsync("/api/v1/schedules/echo/missing", new ScheduleSpec { Cron = "0 * * * *", Payload = new() { ["name"] = "x" } }, PipelinesJson.Options))
            .AssertProblemAsync(HttpStatusCode.NotFound, "name");
    }

    [Fact]
    public async Task Schedules_are_listed_with_their_next_fire_times_file_schedules_included()
    {
        await _client.CreateScheduleAsync(Hourly("listed"));

        var echo = (await _client.ListSchedulesAsync("echo", nextFireTimes: 3)).Items;
        var all = (await _client.ListSchedulesAsync(limit: 200)).Items;

        Assert.All(echo, s => Assert.Equal("echo", s.Pipeline));
        Assert.Equal(3, echo.Single(s => s.Name == "listed").NextFireTimes.Count);
        var nightly = all.Single(s => s.Pipeline == "private-image");
        Assert.Equal((ScheduleSource.File, ScheduleState.Paused), (nightly.Source, nightly.State));
        await (await _http.GetAsync("/api/v1/schedules?next=1000")).AssertProblemAsync(HttpStatusCode.BadRequest, "next");
    }

    [Fact]
    public async Task Schedules_are_listed_a_page_at_a_time_with_a_cursor()
    {
        await _client.CreateScheduleAsync(Hourly("paged-1"));
        await _client.CreateScheduleAsync(Hourly("paged-2"));

        var first = await _client.ListSchedulesAsync(limit: 1);
        var second = await _client.ListSchedulesAsync(limit: 1, cursor: first.NextCursor);

        Assert.Single(first.Items);
        Assert.Single(second.Items);
        Assert.NotEqual((first.Items[0].Pipeline, first.Items[0].Name), (second.Items[0].Pipeline, second.Items[0].Name));
        await (await _http.GetAsync("/api/v1/schedules?limit=0")).AssertProblemAsync(HttpStatusCode.BadRequest, "limit");
        await (await _http.GetAsync("/api/v1/schedules?limit=201")).AssertProblemAsync(HttpStatusCode.BadRequest, "limit");
        await (await _http.GetAsync("/api/v1/schedules?cursor=not-a-cursor")).AssertProblemAsync(HttpStatusCode.BadRequest, "cursor");
    }
}

/// <summary>A host that allows schedules firing every second, to see one fire.</summary>
public sealed class AnyIntervalFactory : ApiFactory
{
    protected override void Configure(IDictionary<string, string?> settings) =>
        settings["Pipelines:Api:MinimumScheduleInterval"] = "00:00:00";
}

public sealed class ScheduleFiringTests(AnyIntervalFactory factory) : IClassFixture<AnyIntervalFactory>
{
    [Fact]
    public async Task A_schedule_created_through_the_api_fires_without_a_restart()
    {
        var client = factory.Client();

        await client.CreateScheduleAsync(new ScheduleSpec { Pipeline = "echo", Name = "every-second", Cron = "* * * * * ?", Payload = new() { ["name"] = "tick" } });

        var runs = await Eventually.WaitAsync(
            () => client.ListRunsAsync(new RunQuery { Schedule = "echo/every-second" }),
            page => page.Items.Count > 0, "a run of the schedule", TimeSpan.FromSeconds(20));
        await client.DeleteScheduleAsync("echo", "every-second");
        var run = await client.WaitForRunAsync(runs.Items[^1].Id);
        Assert.Equal("schedule", run.Trigger);
        Assert.Equal("tick", run.Input["name"]!.GetValue<string>());
    }
}
