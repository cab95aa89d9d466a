using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using Pipelines.Api.Tests.Infrastructure;
using Pipelines.Client;
using Pipelines.Core.Coordination;
using Pipelines.Core.Planning;
using Pipelines.Core.Runs;

namespace Pipelines.Api.Tests;

public sealed class BusClientTests(ApiFactory factory) : IClassFixture<ApiFactory>
{
    private PipelinesBusClient Bus() =>
        new(factory.Services.GetRequiredService<IBus>(), factory.Services.GetRequiredService<PipelineCatalog>());

    [Fact]
    public async Task A_run_published_on_the_bus_runs_once_however_often_the_same_key_is_published()
    {
        var key = $"bus-{Guid.NewGuid()}";
        var client = factory.Client();

        var first = await Bus().StartRunAsync("echo", new { name = "from the bus" }, key);
        var second = await Bus().StartRunAsync("echo", new { name = "from the bus" }, key);

        Assert.Equal(first, second);
        Assert.Equal(RunLauncher.RunIdFor(key), first);
        var run = await Eventually.WaitAsync(async () =>
        {
            try
            {
                return await client.GetRunAsync(first);
            }
            catch (PipelinesApiException)
            {
                return null;
            }
        }, r => r?.State.IsTerminal() == true, "the published run finishes");
        Assert.Equal(RunState.Succeeded, run!.State);
        Assert.Equal("bus", run.Trigger);
        Assert.Equal("from the bus", run.Step("say")!.Output!["name"]!.GetValue<string>());
        var sameKey = await client.ListRunsAsync(new RunQuery { Pipeline = "echo", From = run.CreatedAt.AddSeconds(-1) });
        Assert.Single(sameKey.Items, r => r.IdempotencyKey == key);
    }

    [Fact]
    public async Task A_key_in_the_schedulers_form_is_refused_before_anything_is_published()
    {
        await Assert.ThrowsAsync<ReservedIdempotencyKeyException>(() =>
            Bus().StartRunAsync("echo", new { name = "x" }, "schedule:echo/nightly:2026-12-02T03:00:00.0000000Z"));
    }

    [Fact]
    public async Task A_key_names_the_same_run_whether_it_is_started_over_http_or_on_the_bus_in_either_order_or_at_once()
    {
        var client = factory.Client();
        var since = DateTimeOffset.UtcNow.AddSeconds(-1);
        var httpFirst = $"http-first-{Guid.NewGuid()}";
        var busFirst = $"bus-first-{Guid.NewGuid()}";
        var together = $"together-{Guid.NewGuid()}";

        var overHttp = await client.StartRunAsync("echo", new { name = "http" }, httpFirst);
        var thenOnBus = await Bus().StartRunAsync("echo", new { name = "http" }, httpFirst);
        var onBus = await Bus().StartRunAsync("echo", new { name = "bus" }, busFirst);
        await Eventually.WaitAsync(() => TryGetAsync(client, onBus), r => r is not null, "the published run is stored");
        var thenOverHttp = await client.StartRunAsync("echo", new { name = "bus" }, busFirst);
        async Task<Guid> StartOverHttpAsync() => (await client.StartRunAsync("echo", new { name = "race" }, together)).Id;
        var racing = await Task.WhenAll(StartOverHttpAsync(), Bus().StartRunAsync("echo", new { name = "race" }, together));

        Assert.Equal(overHttp.Id, thenOnBus);
        Assert.Equal(onBus, thenOverHttp.Id);
        Assert.False(thenOverHttp.Created);
        Assert.Equal(racing[0], racing[1]);
        foreach (var key in new[] { httpFirst, busFirst, together })
        {
            var run = await Eventually.WaitAsync(() => TryGetAsync(client, RunLauncher.RunIdFor(key)), r => r?.State.IsTerminal() == true, $"the run of key {key} finishes");
            Assert.Equal(RunState.Succeeded, run!.State);
        }
        var runs = await client.ListRunsAsync(new RunQuery { Pipeline = "echo", From = since, Limit = 200 });
        Assert.Equal(3, runs.Items.Count(r => r.IdempotencyKey is { } key && (key == httpFirst || key == busFirst || key == together)));
    }

    private static async Task<Run?> TryGetAsync(PipelinesClient client, Guid runId)
    {
        try
        {
            return await client.GetRunAsync(runId);
        }
        catch (PipelinesApiException e) when (e.Status == System.Net.HttpStatusCode.NotFound)
        {
            return null;
        }
    }

    [Fact]
    public async Task A_bad_start_throws_before_anything_is_published()
    {
        await Assert.ThrowsAsync<InvalidRunInputException>(() => Bus().StartRunAsync("echo", new { count = 1 }));
        await Assert.ThrowsAsync<UnknownPipelineException>(() => Bus().StartRunAsync("nope"));
    }

    [Fact]
    public async Task A_run_is_cancelled_through_the_bus()
    {
        var client = factory.Client();
        var started = await client.StartRunAsync("sleepy", new { sleep_ms = 60_000 });
        await Eventually.WaitAsync(() => client.GetRunAsync(started.Id), r => r.Step("sleep")?.State == StepState.Running, "the sleep step runs");

        await Bus().CancelRunAsync(started.Id);

        Assert.Equal(RunState.Cancelled, (await client.WaitForRunAsync(started.Id)).State);
    }
}
