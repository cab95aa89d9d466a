using System.Net;
using System.Text;
using Pipelines.Api.Tests.Infrastructure;
using Pipelines.Client;
using Pipelines.Core.Runs;
using Pipelines.Tests;

namespace Pipelines.Api.Tests.EndToEnd;

/// <summary>The API over real HTTP, in its own process, with the engine and the scheduler in another, on RabbitMQ and PostgreSQL.</summary>
public sealed class EndToEndTests(Deployment deployment) : IClassFixture<Deployment>
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    [ServiceFact(postgres: true, rabbitMq: true)]
    public async Task A_schedule_created_through_the_api_fires_on_the_separate_scheduler_process_without_a_restart()
    {
        var client = deployment.Client();

        await client.CreateScheduleAsync(new ScheduleSpec { Pipeline = "greet", Name = "every-second", Cron = "* * * * * ?", Payload = new() { ["name"] = "tick" } });
        var page = await Eventually.WaitAsync(
            () => client.ListRunsAsync(new RunQuery { Schedule = "greet/every-second" }),
            runs => runs.Items.Count > 0, $"a run of the schedule\n{deployment.Logs}", Patience);
        await client.DeleteScheduleAsync("greet", "every-second");

        var run = await WaitAsync(client, page.Items[^1].Id);
        Assert.Equal(RunState.Succeeded, run.State);
        Assert.Equal("schedule", run.Trigger);
        Assert.Equal("tick", run.Step("say")!.Output!["name"]!.GetValue<string>());
    }

    [ServiceFact(postgres: true, rabbitMq: true)]
    public async Task The_same_idempotency_key_twice_starts_one_run()
    {
        var client = deployment.Client();
        var key = $"e2e-{Guid.NewGuid()}";

        var first = await client.StartRunAsync("greet", new { name = "once" }, key);
        var second = await client.StartRunAsync("greet", new { name = "once" }, key);

        Assert.True(first.Created);
        Assert.False(second.Created);
        Assert.Equal(first.Id, second.Id);
        Assert.Equal(RunState.Succeeded, (await WaitAsync(client, first.Id)).State);
    }

    [ServiceFact(postgres: true, rabbitMq: true, docker: true)]
    public async Task A_running_container_step_log_is_followed_as_it_is_written()
    {
        var client = deployment.Client();
        var started = await client.StartRunAsync("count-lines");
        await Eventually.WaitAsync(() => client.GetRunAsync(started.Id), r => r.Step("count")?.Attempt >= 1 || r.State.IsTerminal(),
            $"the container step starts\n{deployment.Logs}", Patience);

        var received = new List<(string Text, StepState State)>();
        using var timeout = new CancellationTokenSource(Patience);
        await foreach (var line in client.FollowLogAsync(started.Id, "count", 1, timeout.Token))
        {
            if (line.Stream == "stdout")
            {
                received.Add((line.Text, (await client.GetRunAsync(started.Id)).Step("count")!.State));
            }
        }

        Assert.Equal(Enumerable.Range(1, 6).Select(i => $"line {i}"), received.Select(r => r.Text));
        Assert.Equal(StepState.Running, received[0].State);
        Assert.Equal(RunState.Succeeded, (await WaitAsync(client, started.Id)).State);
    }

    [ServiceFact(postgres: true, rabbitMq: true)]
    public async Task A_running_run_is_cancelled()
    {
        var client = deployment.Client();
        var started = await StartAsUsersShouldAsync(client, "sleepy", new { sleep_ms = 120_000 });
        await Eventually.WaitAsync(() => client.GetRunAsync(started.Id), r => r.Step("sleep")?.State == StepState.Running,
            $"the sleep step runs\n{deployment.Logs}", Patience);

        await client.CancelRunAsync(started.Id);

        Assert.Equal(RunState.Cancelled, (await WaitAsync(client, started.Id)).State);
        // The worker stops the running step once it hears of the cancellation.
        await Eventually.WaitAsync(() => client.GetRunAsync(started.Id), r => r.Step("sleep")!.State == StepState.Cancelled,
            $"the sleep step stops\n{deployment.Logs}", Patience);
    }

    /// <summary>
    /// Starts a run the way the API asks clients to: with an idempotency key, repeated after a 503 (the
    /// broker did not confirm within the API's timeout on a loaded machine), so one start is one run.
    /// </summary>
    private static async Task<RunStarted> StartAsUsersShouldAsync(PipelinesClient client, string pipeline, object payload)
    {
        var key = $"e2e-{Guid.NewGuid()}";
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return await client.StartRunAsync(pipeline, payload, key);
            }
            catch (PipelinesApiException unavailable) when (unavailable.Status == HttpStatusCode.ServiceUnavailable && attempt < 3)
            {
                await Task.Delay(TimeSpan.FromSeconds(2));
            }
        }
    }

    [ServiceFact(postgres: true, rabbitMq: true)]
    public async Task A_failed_run_is_retried_from_its_failed_step()
    {
        var client = deployment.Client();
        var failed = await WaitAsync(client, (await client.StartRunAsync("flaky", new { orders = "many" })).Id);
        Assert.Equal(RunState.Failed, failed.State);

        var retry = await client.RetryRunAsync(failed.Id, new { orders = 3 });

        var run = await WaitAsync(client, retry.Id);
        Assert.Equal(RunState.Succeeded, run.State);
        Assert.Equal(failed.Id, run.RetryOf);
        Assert.True(run.Step("prepare")!.Reused);
    }

    [ServiceFact(postgres: true, rabbitMq: true)]
    public async Task A_missing_or_wrong_key_is_401_and_a_key_without_the_scope_is_403()
    {
        var anonymous = await deployment.Http(key: null).GetAsync("/api/v1/runs");
        var wrong = await deployment.Http("pk_wrong").GetAsync("/api/v1/runs");
        var reader = await deployment.Http(TestKeys.Reader).PostTextAsync("/api/v1/runs", "{\"pipeline\":\"greet\",\"payload\":{\"name\":\"x\"}}");

        await anonymous.AssertProblemAsync(HttpStatusCode.Unauthorized, "Authorization");
        await wrong.AssertProblemAsync(HttpStatusCode.Unauthorized, "Authorization");
        await reader.AssertProblemAsync(HttpStatusCode.Forbidden, "Authorization");
        Assert.Equal(HttpStatusCode.OK, (await deployment.Http(TestKeys.Reader).GetAsync("/api/v1/runs")).StatusCode);
    }

    [ServiceFact(postgres: true, rabbitMq: true)]
    public async Task Malformed_wrongly_typed_huge_and_deeply_nested_bodies_get_4xx_problems()
    {
        var http = deployment.Http();
        // As curl does for a large body: the server refuses it before it is sent.
        http.DefaultRequestHeaders.ExpectContinue = true;
        var bodies = new (string Body, HttpStatusCode Status)[]
        {
            ("{\"pipeline\":", HttpStatusCode.BadRequest),
            ("{\"pipeline\":[\"greet\"]}", HttpStatusCode.BadRequest),
            ("{\"pipeline\":\"greet\",\"payload\":{\"name\":7}}", HttpStatusCode.UnprocessableEntity),
            ($"{{\"pipeline\":\"greet\",\"payload\":{{\"name\":\"{new string('x', 2 * 1024 * 1024)}\"}}}}", HttpStatusCode.RequestEntityTooLarge),
            ($"{{\"pipeline\":\"greet\",\"payload\":{string.Concat(Enumerable.Repeat("[", 500))}{new string(']', 500)}}}", HttpStatusCode.BadRequest),
            ("\u00ff\u00fe garbage", HttpStatusCode.BadRequest),
        };

        foreach (var (body, status) in bodies)
        {
            var response = await http.PostAsync("/api/v1/runs", new StringContent(body, Encoding.UTF8, "application/json"));
            await response.AssertProblemAsync(status);
        }
    }

    private static async Task<Run> WaitAsync(PipelinesClient client, Guid runId)
    {
        using var timeout = new CancellationTokenSource(Patience);
        return await client.WaitForRunAsync(runId, TimeSpan.FromMilliseconds(200), timeout.Token);
    }
}
