using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Pipelines.Api.Tests.Infrastructure;
using Pipelines.Client;
using Pipelines.Core.Runs;

namespace Pipelines.Api.Tests;

public sealed class RunEndpointsTests(ApiFactory factory) : IClassFixture<ApiFactory>
{
    private readonly PipelinesClient _client = factory.Client();
    private readonly HttpClient _http = factory.Http();

    [Fact]
    public async Task Start_with_an_idempotency_key_answers_201_then_200_with_the_same_run()
    {
        var key = $"order-{Guid.NewGuid()}";

        var first = await _http.PostJsonAsync("/api/v1/runs", new { pipeline = "echo", payload = new { name = "ada" } }, key);
        var second = await _http.PostJsonAsync("/api/v1/runs", new { pipeline = "echo", payload = new { name = "ada" } }, key);

        var created = await AssertCreatedThenFoundAsync(first, second);
        Assert.Equal($"/api/v1/runs/{created.Id}", first.Headers.Location?.OriginalString);
        var run = await _client.WaitForRunAsync(created.Id);
        Assert.Equal(RunState.Succeeded, run.State);
        Assert.Equal(key, run.IdempotencyKey);
        Assert.Equal("ada", run.Step("say")!.Output!["name"]!.GetValue<string>());
    }

    [Fact]
    public async Task An_idempotency_key_reused_for_another_pipeline_is_refused_naming_the_header()
    {
        var key = $"reused-{Guid.NewGuid()}";
        await _client.StartRunAsync("echo", new { name = "ada" }, key);

        var response = await _http.PostJsonAsync("/api/v1/runs", new { pipeline = "sleepy" }, key);

        await response.AssertProblemAsync(HttpStatusCode.UnprocessableEntity, "Idempotency-Key");
    }

    [Fact]
    public async Task A_payload_that_does_not_fit_the_parameters_is_refused_naming_each_field()
    {
        var response = await _http.PostJsonAsync("/api/v1/runs", new { pipeline = "echo", payload = new { count = "three" } });

        var problem = await response.AssertProblemAsync(HttpStatusCode.UnprocessableEntity, "payload.count");
        Assert.Contains(problem.Errors, e => e.Field == "payload" && e.Message.Contains("'name'", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("""{"name":"\ud800"}""", "payload.name")]
    [InlineData("""{"name":"ada","tags":["ok",{"deep":"x\udc00y"}]}""", "payload.tags")]
    [InlineData("""{"name":"ada","\ud800":1}""", "payload")]
    [InlineData("""{"name":"ada","extra":{"a":1,"a":2}}""", "payload.extra")]
    [InlineData("""{"name":"ada","v1.2":{"x":"\ud800"}}""", "payload.v1.2")]
    public async Task A_payload_that_cannot_be_read_back_is_refused_naming_where_on_start_and_retry(string payload, string field)
    {
        using var start = new StringContent($$"""{"pipeline":"echo","payload":{{payload}}}""", System.Text.Encoding.UTF8, "application/json");
        var problem = await (await _http.PostAsync("/api/v1/runs", start)).AssertProblemAsync(HttpStatusCode.UnprocessableEntity, field);
        Assert.Contains(problem.Errors, e => e.Message.Contains("not valid Unicode", StringComparison.Ordinal) || e.Message.Contains("same property twice", StringComparison.Ordinal));

        var failed = await _client.WaitForRunAsync((await _client.StartRunAsync("flaky", new { orders = "many" })).Id);
        using var retry = new StringContent($$"""{"payload":{{payload}}}""", System.Text.Encoding.UTF8, "application/json");
        await (await _http.PostAsync($"/api/v1/runs/{failed.Id}/retry", retry)).AssertProblemAsync(HttpStatusCode.UnprocessableEntity, field);
    }

    [Theory]
    [InlineData("{}", "pipeline")]
    [InlineData("{\"pipeline\": 42}", "pipeline")]
    [InlineData("{\"pipeline\": \"echo\", \"payload\": [1, 2]}", "payload")]
    [InlineData("{\"pipeline\": \"echo\", \"paylaod\": {}}", "paylaod")]
    [InlineData("{\"pipeline\": \"echo\",", "body")]
    [InlineData("", "body")]
    public async Task Malformed_start_requests_answer_400_naming_the_field(string body, string field)
    {
        var response = await _http.PostTextAsync("/api/v1/runs", body);

        await response.AssertProblemAsync(HttpStatusCode.BadRequest, field);
    }

    [Fact]
    public async Task An_unknown_pipeline_is_refused_with_a_suggestion()
    {
        var problem = await (await _http.PostJsonAsync("/api/v1/runs", new { pipeline = "ecko" }))
            .AssertProblemAsync(HttpStatusCode.UnprocessableEntity, "pipeline");

        Assert.Contains("did you mean 'echo'", problem.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_idempotency_key_that_is_too_long_is_refused_naming_the_header()
    {
        var response = await _http.PostJsonAsync("/api/v1/runs", new { pipeline = "echo", payload = new { name = "a" } }, new string('k', 201));

        await response.AssertProblemAsync(HttpStatusCode.BadRequest, "Idempotency-Key");
    }

    [Fact]
    public async Task An_idempotency_key_of_the_schedulers_form_is_refused_naming_the_header()
    {
        var response = await _http.PostJsonAsync("/api/v1/runs", new { pipeline = "echo", payload = new { name = "a" } }, "schedule:echo/nightly:2026-12-02T03:00:00.0000000Z");

        await response.AssertProblemAsync(HttpStatusCode.BadRequest, "Idempotency-Key");
    }

    [Fact]
    public async Task Runs_are_listed_newest_first_filtered_and_paged_by_cursor_without_gaps_or_repeats()
    {
        var since = DateTimeOffset.UtcNow.AddMilliseconds(-1);
        var started = new List<Guid>();
        for (var i = 0; i < 5; i++)
        {
            started.Add((await _client.StartRunAsync("echo", new { name = $"page-{i}" })).Id);
        }
        foreach (var id in started)
        {
            await _client.WaitForRunAsync(id);
        }

        var seen = new List<Guid>();
        string? cursor = null;
        var pages = 0;
        do
        {
            var page = await _client.ListRunsAsync(new RunQuery { Pipeline = "echo", From = since, Limit = 2, Cursor = cursor });
            seen.AddRange(page.Items.Select(r => r.Id));
            Assert.All(page.Items, r => Assert.Equal("echo", r.Pipeline));
            cursor = page.NextCursor;
            pages++;
        }
        while (cursor is not null);

        Assert.Equal(3, pages);
        Assert.Equal(started.AsEnumerable().Reverse(), seen);
        var succeeded = await _client.ListRunsAsync(new RunQuery { From = since, States = [RunState.Succeeded, RunState.Failed] });
        Assert.Equal(started.Order(), succeeded.Items.Select(r => r.Id).Order());
        var none = await _client.ListRunsAsync(new RunQuery { From = since, States = [RunState.Cancelled] });
        Assert.Empty(none.Items);
        var before = await _client.ListRunsAsync(new RunQuery { Pipeline = "echo", To = since });
        Assert.DoesNotContain(before.Items, r => started.Contains(r.Id));
        var inBerlin = await _client.ListRunsAsync(new RunQuery { Pipeline = "echo", From = since.ToOffset(TimeSpan.FromHours(2)) });
        Assert.Equal(started.AsEnumerable().Reverse(), inBerlin.Items.Select(r => r.Id));
    }

    [Theory]
    [InlineData("limit=0", "limit")]
    [InlineData("limit=201", "limit")]
    [InlineData("limit=many", "limit")]
    [InlineData("state=sleeping", "state")]
    [InlineData("from=yesterday", "from")]
    [InlineData("from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z", "to")]
    [InlineData("cursor=not-a-cursor", "cursor")]
    public async Task Bad_listing_parameters_answer_400_naming_the_parameter(string query, string field)
    {
        var response = await _http.GetAsync($"/api/v1/runs?{query}");

        await response.AssertProblemAsync(HttpStatusCode.BadRequest, field);
    }

    [Fact]
    public async Task A_run_shows_every_step_with_attempts_timings_output_and_error()
    {
        var started = await _client.StartRunAsync("flaky", new { orders = "many" });

        var run = await _client.WaitForRunAsync(started.Id);

        Assert.Equal(RunState.Failed, run.State);
        Assert.Equal("fetch", run.FailedStep);
        Assert.Equal(["prepare", "fetch"], run.Steps.Select(s => s.Name));
        var prepare = run.Step("prepare")!;
        Assert.Equal(StepState.Succeeded, prepare.State);
        Assert.Equal("many", prepare.Output!["orders"]!.GetValue<string>());
        Assert.True(prepare.FinishedAt >= prepare.StartedAt);
        var fetch = run.Step("fetch")!;
        Assert.Equal(StepState.Failed, fetch.State);
        Assert.NotNull(fetch.Error?.Message);
        var attempt = Assert.Single(fetch.Attempts);
        Assert.Equal(1, attempt.Number);
        Assert.Equal(StepState.Failed, attempt.State);
        Assert.False(string.IsNullOrEmpty(attempt.Worker));
        Assert.NotNull(attempt.FinishedAt);
        Assert.Equal("many", run.Input["orders"]!.GetValue<string>());
    }

    [Fact]
    public async Task An_unknown_run_answers_404_naming_the_run_id()
    {
        var response = await _http.GetAsync($"/api/v1/runs/{Guid.NewGuid()}");

        await response.AssertProblemAsync(HttpStatusCode.NotFound, "run_id");
    }

    [Fact]
    public async Task A_running_run_is_cancelled_and_cannot_be_cancelled_twice()
    {
        var started = await _client.StartRunAsync("sleepy", new { sleep_ms = 60_000 });
        await Eventually.WaitAsync(() => _client.GetRunAsync(started.Id), r => r.Step("sleep")?.State == StepState.Running, "the sleep step runs");

        var accepted = await _http.PostAsync($"/api/v1/runs/{started.Id}/cancel", null);

        Assert.Equal(HttpStatusCode.Accepted, accepted.StatusCode);
        var run = await _client.WaitForRunAsync(started.Id);
        Assert.Equal(RunState.Cancelled, run.State);
        var again = await _http.PostAsync($"/api/v1/runs/{started.Id}/cancel", null);
        await again.AssertProblemAsync(HttpStatusCode.Conflict, "state");
        await (await _http.PostAsync($"/api/v1/runs/{Guid.NewGuid()}/cancel", null)).AssertProblemAsync(HttpStatusCode.NotFound, "run_id");
    }

    [Fact]
    public async Task A_failed_run_is_retried_from_its_failed_step_with_an_overridden_payload()
    {
        var failed = await _client.WaitForRunAsync((await _client.StartRunAsync("flaky", new { orders = "many" })).Id);
        Assert.Equal(RunState.Failed, failed.State);

        var retry = await _http.PostJsonAsync($"/api/v1/runs/{failed.Id}/retry", new { payload = new { orders = 2 } });

        Assert.Equal(HttpStatusCode.Created, retry.StatusCode);
        var started = await retry.Content.ReadFromJsonAsync<RunStarted>(PipelinesJson.Options);
        var run = await _client.WaitForRunAsync(started!.Id);
        Assert.Equal(RunState.Succeeded, run.State);
        Assert.Equal(failed.Id, run.RetryOf);
        Assert.Equal("retry", run.Trigger);
        Assert.True(run.Step("prepare")!.Reused);
        Assert.Equal(2, run.Step("fetch")!.Output!["orders"]!.AsArray().Count);
    }

    [Fact]
    public async Task Retry_with_an_idempotency_key_answers_201_then_200_with_the_same_run_and_retries_once()
    {
        var failed = await _client.WaitForRunAsync((await _client.StartRunAsync("flaky", new { orders = "many" })).Id);
        var key = $"retry-{Guid.NewGuid()}";

        var first = await _http.PostJsonAsync($"/api/v1/runs/{failed.Id}/retry", new { payload = new { orders = 2 } }, key);
        var second = await _http.PostJsonAsync($"/api/v1/runs/{failed.Id}/retry", new { payload = new { orders = 2 } }, key);

        var created = await AssertCreatedThenFoundAsync(first, second);
        var run = await _client.WaitForRunAsync(created.Id);
        Assert.Equal(RunState.Succeeded, run.State);
        Assert.Equal(key, run.IdempotencyKey);
        var retries = await _client.ListRunsAsync(new RunQuery { Pipeline = "flaky", From = failed.CreatedAt });
        Assert.Single(retries.Items, r => r.RetryOf == failed.Id);
    }

    [Fact]
    public async Task An_idempotency_key_of_a_start_reused_for_a_retry_or_of_a_retry_for_a_start_is_refused_naming_the_header()
    {
        var failed = await _client.WaitForRunAsync((await _client.StartRunAsync("flaky", new { orders = "many" })).Id);
        var startKey = $"start-{Guid.NewGuid()}";
        var retryKey = $"retry-{Guid.NewGuid()}";
        await _client.StartRunAsync("flaky", new { orders = 1 }, startKey);
        await _client.RetryRunAsync(failed.Id, new { orders = 1 }, retryKey);

        await (await _http.PostJsonAsync($"/api/v1/runs/{failed.Id}/retry", new { }, startKey))
            .AssertProblemAsync(HttpStatusCode.UnprocessableEntity, "Idempotency-Key");
        await (await _http.PostJsonAsync("/api/v1/runs", new { pipeline = "flaky" }, retryKey))
            .AssertProblemAsync(HttpStatusCode.UnprocessableEntity, "Idempotency-Key");
        await (await _http.PostJsonAsync($"/api/v1/runs/{failed.Id}/retry", new { }, new string('k', 201)))
            .AssertProblemAsync(HttpStatusCode.BadRequest, "Idempotency-Key");
    }

    [Fact]
    public async Task Only_a_failed_or_cancelled_run_can_be_retried()
    {
        var succeeded = await _client.WaitForRunAsync((await _client.StartRunAsync("echo", new { name = "ok" })).Id);

        await (await _http.PostAsync($"/api/v1/runs/{succeeded.Id}/retry", null)).AssertProblemAsync(HttpStatusCode.Conflict, "state");
        await (await _http.PostAsync($"/api/v1/runs/{Guid.NewGuid()}/retry", null)).AssertProblemAsync(HttpStatusCode.NotFound, "run_id");
        await (await _http.PostTextAsync($"/api/v1/runs/{succeeded.Id}/retry", "{\"payload\": 5}")).AssertProblemAsync(HttpStatusCode.BadRequest, "payload");
    }

    [Fact]
    public async Task Statistics_count_runs_by_state_and_give_duration_percentiles()
    {
        var since = DateTimeOffset.UtcNow.AddMilliseconds(-1);
        await _client.WaitForRunAsync((await _client.StartRunAsync("sleepy", new { sleep_ms = 10 })).Id);
        await _client.WaitForRunAsync((await _client.StartRunAsync("sleepy", new { sleep_ms = 200 })).Id);

        var statistics = await _client.GetStatisticsAsync("sleepy", from: since);

        var sleepy = Assert.Single(statistics.Pipelines);
        Assert.Equal(2, sleepy.Total);
        Assert.Equal(2, sleepy.Counts[RunState.Succeeded]);
        Assert.Equal(0, sleepy.Counts[RunState.Failed]);
        Assert.Equal(Enum.GetValues<RunState>().Length, sleepy.Counts.Count);
        Assert.Equal(2, sleepy.Durations!.Count);
        Assert.True(sleepy.Durations.P99Ms >= 200, $"p99 {sleepy.Durations.P99Ms} ms");
        Assert.True(sleepy.Durations.P50Ms <= sleepy.Durations.P90Ms);
        await (await _http.GetAsync("/api/v1/runs/statistics?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z")).AssertProblemAsync(HttpStatusCode.BadRequest, "to");
    }

    [Fact]
    public async Task A_step_attempt_log_is_plain_text_with_optional_timestamps()
    {
        var run = await _client.WaitForRunAsync((await _client.StartRunAsync("chatty", new { lines = 3, interval_ms = 1 })).Id);

        var text = await _client.GetLogAsync(run.Id, "talk", 1);
        var stamped = await _http.GetAsync($"/api/v1/runs/{run.Id}/steps/talk/attempts/1/log?timestamps=true");

        Assert.Equal("line 1\nline 2\nline 3\n", text.ReplaceLineEndings("\n"));
        Assert.Equal("text/plain", stamped.Content.Headers.ContentType?.MediaType);
        var lines = (await stamped.Content.ReadAsStringAsync()).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.All(lines, l => Assert.Matches(@"^\d{4}-\d\d-\d\dT[\d:.]+Z stdout line \d$", l));
        await (await _http.GetAsync($"/api/v1/runs/{run.Id}/steps/talk/attempts/2/log")).AssertProblemAsync(HttpStatusCode.NotFound, "attempt");
        await (await _http.GetAsync($"/api/v1/runs/{run.Id}/steps/nope/attempts/1/log")).AssertProblemAsync(HttpStatusCode.NotFound, "attempt");
    }

    [Fact]
    public async Task Following_a_running_step_streams_its_lines_as_they_are_written_and_ends_with_the_attempt()
    {
        var started = await _client.StartRunAsync("chatty", new { lines = 6, interval_ms = 150 });
        await Eventually.WaitAsync(() => _client.GetRunAsync(started.Id), r => r.Step("talk")?.Attempt == 1, "the talk step starts");

        var received = new List<(LogLine Line, RunState RunState)>();
        await foreach (var line in _client.FollowLogAsync(started.Id, "talk", 1))
        {
            received.Add((line, (await _client.GetRunAsync(started.Id)).State));
        }

        Assert.Equal(Enumerable.Range(1, 6).Select(i => $"line {i}"), received.Select(r => r.Line.Text));
        Assert.Equal(RunState.Running, received[0].RunState);
        Assert.True(received.Select(r => r.Line.Id).SequenceEqual(received.Select(r => r.Line.Id).Order()));
    }

    [Fact]
    public async Task A_followed_log_is_server_sent_events_that_resume_after_the_last_event_id()
    {
        var run = await _client.WaitForRunAsync((await _client.StartRunAsync("chatty", new { lines = 3, interval_ms = 1 })).Id);
        var path = $"/api/v1/runs/{run.Id}/steps/talk/attempts/1/log?follow=true";
        var all = await _http.GetAsync(path);
        var firstId = System.Text.RegularExpressions.Regex.Match(await all.Content.ReadAsStringAsync(), @"id: (\d+)").Groups[1].Value;

        var request = new HttpRequestMessage(HttpMethod.Get, path);
        request.Headers.Add("Last-Event-ID", firstId);
        var resumed = await (await _http.SendAsync(request)).Content.ReadAsStringAsync();

        Assert.Equal("text/event-stream", all.Content.Headers.ContentType?.MediaType);
        Assert.DoesNotContain("line 1", resumed, StringComparison.Ordinal);
        Assert.Contains("\"text\":\"line 2\"", resumed, StringComparison.Ordinal);
        Assert.Contains("event: end", resumed, StringComparison.Ordinal);
        Assert.Contains("\"state\":\"succeeded\"", resumed, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_client_raises_the_problem_details_of_a_refused_request()
    {
        var error = await Assert.ThrowsAsync<PipelinesApiException>(() => _client.StartRunAsync("echo", new JsonObject { ["count"] = "x" }));

        Assert.Equal(HttpStatusCode.UnprocessableEntity, error.Status);
        Assert.Contains(error.Problem!.Errors, e => e.Field == "payload.count");
        Assert.Contains("payload.count", error.Message, StringComparison.Ordinal);
    }

    /// <summary>The first of two answers with one Idempotency-Key created a run (201), the second found the same one (200).</summary>
    private static async Task<RunStarted> AssertCreatedThenFoundAsync(HttpResponseMessage first, HttpResponseMessage second)
    {
        Assert.Equal(HttpStatusCode.Created, first.StatusCode);
        Assert.Equal(HttpStatusCode.OK, second.StatusCode);
        var created = await first.Content.ReadFromJsonAsync<RunStarted>(PipelinesJson.Options);
        var repeated = await second.Content.ReadFromJsonAsync<RunStarted>(PipelinesJson.Options);
        Assert.Equal(created!.Id, repeated!.Id);
        Assert.True(created.Created);
        Assert.False(repeated.Created);
        return created;
    }
}
