using System.Collections.Concurrent;
using System.Text.Json.Nodes;
using MassTransit;
using MassTransit.Courier.Contracts;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using Pipelines.Core.Contracts;
using Pipelines.Core.Execution;
using Pipelines.Core.Hosting;
using Pipelines.Core.Runs;
using Pipelines.Workers.Demo;
using Pipelines.Workers.Hosting;

namespace Pipelines.Engine.Tests;

/// <summary>The whole engine in one process: in-memory transport, SQLite run store (the embedded default).</summary>
public sealed class EmbeddedEngineTests : IDisposable
{
    private readonly TemporarySqlite _database = new();
    private readonly ConcurrentQueue<string> _executions = new();

    public void Dispose() => _database.Dispose();

    private const string Diamond = """
        pipelines:
          diamond:
            parameters:
              n: { type: integer, default: 2 }
            steps:
              - { name: a, handler: t.a }
              - { name: b, handler: t.b, depends_on: [a] }
              - { name: c, handler: t.c, depends_on: [a] }
              - { name: d, handler: t.d, depends_on: [b, c] }
        """;

    private Task<EngineHost> StartAsync(string yaml, Action<PipelinesBuilder> handlers, Action<Workers.Steps.WorkerOptions>? worker = null, string? environment = null) =>
        EngineHost.StartAsync(EngineHost.Catalog(yaml), _database.Options, pipelines =>
        {
            pipelines.AddCoordinator().AddWorker();
            handlers(pipelines);
        }, options => options.Environment = environment, worker);

    private Func<Core.Execution.StepContext, Task<JsonNode?>> Record(Func<Core.Execution.StepContext, JsonNode?> body) => context =>
    {
        _executions.Enqueue(context.Step);
        return Task.FromResult(body(context));
    };

    [Fact]
    public async Task A_diamond_passes_outputs_downstream_and_joins_once()
    {
        await using var engine = await StartAsync(Diamond, p => p
            .AddHandler("t.a", Record(c => new JsonObject { ["value"] = c.Event["n"]!.GetValue<int>() }))
            .AddHandler("t.b", Record(c => new JsonObject { ["value"] = c.Inputs["a"]!["value"]!.GetValue<int>() * 10 }))
            .AddHandler("t.c", Record(c => new JsonObject { ["value"] = c.Inputs["a"]!["value"]!.GetValue<int>() + 1 }))
            .AddHandler("t.d", Record(c => new JsonObject { ["sum"] = c.Inputs["b"]!["value"]!.GetValue<int>() + c.Inputs["c"]!["value"]!.GetValue<int>() })));

        var launched = await engine.StartRunAsync("diamond", new JsonObject { ["n"] = 4 });
        var run = await engine.WaitForRunAsync(launched.RunId);

        Assert.Equal(RunState.Succeeded, run.State);
        Assert.Equal("""{"sum":45}""", run.Steps.Single(s => s.Name == "d").Output);
        Assert.Equal(["a", "b", "c", "d"], _executions.Order(StringComparer.Ordinal));
        Assert.All(run.Steps, s => Assert.Equal(1, s.Attempts));
    }

    [Fact]
    public async Task The_bus_sends_no_usage_report_to_the_MassTransit_vendor()
    {
        await using var engine = await StartAsync(Diamond, p => { });

        Assert.False(engine.Services.GetRequiredService<IOptions<UsageTelemetryOptions>>().Value.Enabled);
    }

    [Fact]
    public async Task Parameter_defaults_fill_the_event()
    {
        await using var engine = await StartAsync(Diamond, p => p
            .AddHandler("t.a", Record(c => c.Event.DeepClone()))
            .AddHandler("t.b", Record(_ => null)).AddHandler("t.c", Record(_ => null)).AddHandler("t.d", Record(_ => null)));

        var run = await engine.WaitForRunAsync((await engine.StartRunAsync("diamond")).RunId);

        Assert.Equal("""{"n":2}""", run.Steps.Single(s => s.Name == "a").Output);
    }

    [Fact]
    public async Task A_payload_of_the_wrong_type_is_refused_naming_the_parameter()
    {
        await using var engine = await StartAsync(Diamond, p => p.AddDemoHandlers());

        var error = await Assert.ThrowsAsync<Core.Coordination.InvalidRunInputException>(() => engine.StartRunAsync("diamond", new JsonObject { ["n"] = "two" }));

        Assert.Equal("n", error.Problems.Single().Field);
        Assert.Contains("parameter 'n' must be an integer", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_failing_step_is_retried_then_fails_the_run_with_its_error_and_cancels_what_is_pending()
    {
        const string yaml = """
            pipelines:
              flaky:
                steps:
                  - { name: first, handler: t.ok }
                  - name: breaks
                    handler: t.breaks
                    depends_on: [first]
                    retry: { attempts: 3, backoff: fixed, initial: 10ms }
                  - { name: after, handler: t.ok, depends_on: [breaks] }
            """;
        await using var engine = await StartAsync(yaml, p => p
            .AddHandler("t.ok", Record(_ => null))
            .AddHandler("t.breaks", c => throw new InvalidOperationException($"broken on attempt {c.Attempt}")));

        var run = await engine.WaitForRunAsync((await engine.StartRunAsync("flaky")).RunId);

        Assert.Equal(RunState.Failed, run.State);
        Assert.Equal("breaks", run.FailedStep);
        var breaks = run.Steps.Single(s => s.Name == "breaks");
        Assert.Equal((StepState.Failed, 3), (breaks.State, breaks.Attempts));
        Assert.Equal(("exception", typeof(InvalidOperationException).FullName), (breaks.ErrorKind, breaks.ErrorType));
        Assert.Equal("broken on attempt 3", breaks.ErrorMessage);
        Assert.Contains("at ", breaks.ErrorStack, StringComparison.Ordinal);
        Assert.Equal(StepState.Cancelled, run.Steps.Single(s => s.Name == "after").State);
        var attempts = (await engine.AttemptsAsync(run.Id)).Where(a => a.Step == "breaks").ToList();
        Assert.Equal([1, 2, 3], attempts.Select(a => a.Number));
        Assert.All(attempts, a => Assert.Equal(StepState.Failed, a.State));
    }

    [Fact]
    public async Task A_step_that_runs_too_long_is_cancelled_and_fails_as_timed_out()
    {
        const string yaml = """
            pipelines:
              slow:
                steps:
                  - { name: sleepy, handler: demo.sleep, timeout: 200ms }
            """;
        await using var engine = await StartAsync(yaml, p => p.AddDemoHandlers());

        var run = await engine.WaitForRunAsync((await engine.StartRunAsync("slow", new JsonObject { ["sleep_ms"] = 30_000 })).RunId);

        var step = run.Steps.Single();
        Assert.Equal(RunState.Failed, run.State);
        Assert.Equal(("timeout", "step 'sleepy' timed out after 200ms"), (step.ErrorKind, step.ErrorMessage));
    }

    [Fact]
    public async Task Compensations_run_in_reverse_dependency_order_across_parallel_branches()
    {
        const string yaml = """
            pipelines:
              saga:
                steps:
                  - { name: reserve, handler: t.undoable }
                  - { name: left, handler: t.undoable, depends_on: [reserve] }
                  - { name: right, handler: t.undoable, depends_on: [reserve] }
                  - { name: charge, handler: t.fails, depends_on: [left, right] }
            """;
        var undone = new ConcurrentQueue<string>();
        await using var engine = await StartAsync(yaml, p => p
            .AddHandler("t.undoable", Record(_ => null), (context, _) =>
            {
                undone.Enqueue(context.Step);
                return Task.CompletedTask;
            })
            .AddHandler("t.fails", _ => throw new InvalidOperationException("card declined")));

        var run = await engine.WaitForRunAsync((await engine.StartRunAsync("saga")).RunId);

        Assert.Equal(RunState.Failed, run.State);
        var order = undone.ToList();
        Assert.Equal(3, order.Count);
        Assert.Equal("reserve", order[^1]);
        Assert.Equal(["left", "right"], order.Take(2).Order(StringComparer.Ordinal));
        Assert.All(run.Steps.Where(s => s.Name != "charge"), s => Assert.Equal(StepState.Compensated, s.State));
    }

    private const string Saga = """
        pipelines:
          saga:
            steps:
              - { name: reserve, handler: t.undoable }
              - { name: ship, handler: t.undoable, depends_on: [reserve] }
              - { name: charge, handler: t.fails, depends_on: [ship] }
        """;

    private static Action<PipelinesBuilder> SagaHandlers(ConcurrentQueue<string> undone, TimeSpan undoTakes = default) => p => p
        .AddHandler("t.undoable", _ => Task.FromResult<JsonNode?>(null), async (context, _) =>
        {
            await Task.Delay(undoTakes, context.CancellationToken);
            undone.Enqueue(context.Step);
        })
        .AddHandler("t.fails", _ => throw new InvalidOperationException("card declined"));

    private Task<EngineHost> StartSagaAsync(ConcurrentQueue<string> undone, TimeSpan undoTakes = default, Action<Workers.Steps.WorkerOptions>? worker = null) =>
        EngineHost.StartAsync(EngineHost.Catalog(Saga), _database.Options, pipelines =>
        {
            pipelines.AddCoordinator().AddWorker();
            SagaHandlers(undone, undoTakes)(pipelines);
        }, worker: worker, coordinator: QuickStallSweep);

    private static void AssertFailedWithEveryCompletedStepUndoneOnce(RunRecord run, ConcurrentQueue<string> undone)
    {
        Assert.Equal(RunState.Failed, run.State);
        Assert.Equal(["ship", "reserve"], undone.ToList());
        Assert.All(run.Steps.Where(s => s.Name != "charge"), s => Assert.Equal(StepState.Compensated, s.State));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_compensation_slip_the_transport_lost_is_sent_again_and_each_step_is_undone_once(bool theLostSlipArrivesLateToo)
    {
        var undone = new ConcurrentQueue<string>();
        Guid runId;
        RoutingSlip compensations;
        // No coordinator here: the test plays its moves, and the compensation slip it decides on is
        // never sent, as if the transport lost it. The run is left compensating.
        await using (var workerOnly = await EngineHost.StartAsync(EngineHost.Catalog(Saga), _database.Options, pipelines =>
        {
            pipelines.AddWorker();
            SagaHandlers(undone)(pipelines);
        }, coordinator: QuickStallSweep))
        {
            runId = (await workerOnly.StartRunAsync("saga")).RunId;
            var coordinator = ActivatorUtilities.CreateInstance<Core.Coordination.RunCoordinator>(workerOnly.Services);
            var bus = workerOnly.Services.GetRequiredService<IBus>();
            foreach (var slip in (await coordinator.StartAsync(new StartRun { RunId = runId, Pipeline = "saga" }, CancellationToken.None)).Slips)
            {
                await bus.Execute(slip);
            }
            await workerOnly.WaitForStepAsync(runId, "charge", StepState.Failed);
            compensations = (await coordinator.ChainEndedAsync(runId, 0, Core.Coordination.ChainEnd.Faulted, CancellationToken.None)).Slips.Single();
            Assert.Equal(RunState.Compensating, await workerOnly.Store.ReadAsync(c => c.Runs.Where(r => r.Id == runId).Select(r => r.State).SingleAsync()));
        }

        await using var engine = await StartSagaAsync(undone);
        if (theLostSlipArrivesLateToo)
        {
            await engine.Services.GetRequiredService<IBus>().Execute(compensations);
        }
        var run = await engine.WaitForRunAsync(runId);

        AssertFailedWithEveryCompletedStepUndoneOnce(run, undone);
    }

    [Fact]
    public async Task A_worker_stopping_in_the_middle_of_a_compensation_gives_it_back_and_it_is_undone_on_the_next_start()
    {
        var undone = new ConcurrentQueue<string>();
        var shipUndoStarted = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Guid runId;
        await using (var stopping = await EngineHost.StartAsync(EngineHost.Catalog(Saga), _database.Options, pipelines => pipelines
            .AddCoordinator().AddWorker()
            .AddHandler("t.undoable", _ => Task.FromResult<JsonNode?>(null), async (context, _) =>
            {
                shipUndoStarted.TrySetResult();
                await Task.Delay(Timeout.Infinite, context.CancellationToken);
            })
            .AddHandler("t.fails", _ => throw new InvalidOperationException("card declined")),
            worker: w => w.GracePeriod = TimeSpan.FromSeconds(1), coordinator: QuickStallSweep))
        {
            runId = (await stopping.StartRunAsync("saga")).RunId;
            await shipUndoStarted.Task.WaitAsync(TimeSpan.FromSeconds(30));
        }
        // The slip it put back on the in-memory queue was lost with the process; its lease was not kept.
        await using (var storeOnly = await EngineHost.StartAsync(EngineHost.Catalog(Saga), _database.Options, _ => { }))
        {
            var ship = await storeOnly.Store.ReadAsync(c => c.Steps.SingleAsync(s => s.RunId == runId && s.Name == "ship"));
            Assert.Equal((StepState.Succeeded, null, null), (ship.State, ship.LeaseOwner, ship.CompensationEndedAt));
        }

        await using var engine = await StartSagaAsync(undone);
        var run = await engine.WaitForRunAsync(runId);

        AssertFailedWithEveryCompletedStepUndoneOnce(run, undone);
    }

    [Fact]
    public async Task A_compensation_running_longer_than_its_lease_and_the_stall_grace_keeps_its_lease_and_runs_once()
    {
        var undone = new ConcurrentQueue<string>();
        await using var engine = await StartSagaAsync(undone, undoTakes: TimeSpan.FromSeconds(3), worker: w => w.LeaseDuration = TimeSpan.FromSeconds(1));

        var run = await engine.WaitForRunAsync((await engine.StartRunAsync("saga")).RunId);

        AssertFailedWithEveryCompletedStepUndoneOnce(run, undone);
    }

    [Fact]
    public async Task Secrets_a_handler_resolved_are_masked_in_its_output_log_and_error()
    {
        const string yaml = """
            pipelines:
              leaky:
                steps:
                  - { name: tell, handler: t.tell }
                  - { name: blurt, handler: t.blurt, depends_on: [tell] }
            """;
        // A quote and a backslash: JSON escapes them, so masking the output's text would miss them.
        const string secret = "s3cr3t-\"quoted\"\\value";
        JsonNode? toldOutput = null;
        await using var engine = await StartAsync(yaml, p =>
        {
            p.Services.Replace(ServiceDescriptor.Singleton<ISecretResolver>(new Secrets(new Dictionary<string, string> { ["API_TOKEN"] = secret })));
            p.AddHandler("t.tell", Record(c =>
                {
                    var token = c.Secrets.Resolve("API_TOKEN")!;
                    c.Log.Write("stdout", $"token is {token}");
                    return new JsonObject { ["token"] = token, ["note"] = $"uses {token}", [token] = 1, ["list"] = new JsonArray(token, 2) };
                }))
                .AddHandler("t.blurt", c =>
                {
                    toldOutput = c.Inputs["tell"]?.DeepClone();
                    throw new InvalidOperationException($"the server rejected {c.Secrets.Resolve("API_TOKEN")}");
                });
        });

        var run = await engine.WaitForRunAsync((await engine.StartRunAsync("leaky")).RunId);

        Assert.Equal((RunState.Failed, "blurt"), (run.State, run.FailedStep));
        const string masked = """{"token":"***","note":"uses ***","***":1,"list":["***",2]}""";
        Assert.Equal(masked, run.Steps.Single(s => s.Name == "tell").Output);
        Assert.Equal(masked, toldOutput?.ToJsonString());
        Assert.Equal("the server rejected ***", run.Steps.Single(s => s.Name == "blurt").ErrorMessage);
        var logs = await engine.Store.ReadAsync(c => c.Logs.Where(l => l.RunId == run.Id).Select(l => l.Text).ToListAsync());
        Assert.Contains("token is ***", logs);
        var attempts = await engine.AttemptsAsync(run.Id);
        string?[] stored = [run.Error, .. run.Steps.SelectMany(s => new[] { s.Output, s.ErrorMessage, s.ErrorStack }), .. attempts.Select(a => a.ErrorMessage), .. logs];
        Assert.DoesNotContain(stored, text => text?.Contains("s3cr3t", StringComparison.Ordinal) == true);
    }

    private sealed class Secrets(IReadOnlyDictionary<string, string> values) : ISecretResolver
    {
        public string? Resolve(string name) => values.GetValueOrDefault(name);
    }

    [Fact]
    public async Task Cancelling_a_run_stops_its_running_handler_and_pending_steps_never_start()
    {
        const string yaml = """
            pipelines:
              long:
                steps:
                  - { name: sleepy, handler: demo.sleep }
                  - { name: later, handler: t.never, depends_on: [sleepy] }
            """;
        await using var engine = await StartAsync(yaml, p => p.AddDemoHandlers().AddHandler("t.never", Record(_ => null)));
        var launched = await engine.StartRunAsync("long", new JsonObject { ["sleep_ms"] = 60_000 });
        await engine.WaitForStepAsync(launched.RunId, "sleepy", StepState.Running);

        await engine.Launcher.CancelAsync(launched.RunId, CancellationToken.None);

        var run = await engine.WaitForRunAsync(launched.RunId);
        Assert.Equal(RunState.Cancelled, run.State);
        await engine.WaitForStepAsync(launched.RunId, "sleepy", StepState.Cancelled, TimeSpan.FromSeconds(5));
        Assert.Equal(StepState.Cancelled, run.Steps.Single(s => s.Name == "later").State);
        Assert.Empty(_executions);
    }

    [Fact]
    public async Task Retrying_a_failed_run_starts_from_the_failed_step_and_reuses_earlier_outputs()
    {
        const string yaml = """
            pipelines:
              twice:
                steps:
                  - { name: first, handler: t.first }
                  - { name: second, handler: t.second, depends_on: [first] }
            """;
        var healthy = false;
        await using var engine = await StartAsync(yaml, p => p
            .AddHandler("t.first", Record(_ => new JsonObject { ["token"] = "abc" }))
            .AddHandler("t.second", Record(c => healthy ? c.Inputs["first"]!.DeepClone() : throw new InvalidOperationException("not yet"))));
        var failed = await engine.WaitForRunAsync((await engine.StartRunAsync("twice")).RunId);
        Assert.Equal(RunState.Failed, failed.State);

        healthy = true;
        var retried = await engine.Launcher.RetryAsync(failed.Id, payload: null, idempotencyKey: null, CancellationToken.None);
        var run = await engine.WaitForRunAsync(retried.RunId);

        Assert.Equal(RunState.Succeeded, run.State);
        Assert.Equal(failed.Id, run.RetryOf);
        Assert.True(run.Steps.Single(s => s.Name == "first").Reused);
        Assert.Equal("""{"token":"abc"}""", run.Steps.Single(s => s.Name == "second").Output);
        Assert.Equal(["first", "second", "second"], _executions.ToList());
    }

    [Fact]
    public async Task The_same_idempotency_key_returns_the_same_run()
    {
        await using var engine = await StartAsync(Diamond, p => p.AddDemoHandlers()
            .AddHandler("t.a", Record(_ => null)).AddHandler("t.b", Record(_ => null)).AddHandler("t.c", Record(_ => null)).AddHandler("t.d", Record(_ => null)));

        var first = await engine.StartRunAsync("diamond", idempotencyKey: "order-42");
        var second = await engine.StartRunAsync("diamond", idempotencyKey: "order-42");
        await engine.WaitForRunAsync(first.RunId);

        Assert.True(first.Created);
        Assert.False(second.Created);
        Assert.Equal(first.RunId, second.RunId);
        Assert.Equal(4, _executions.Count);
    }

    [Fact]
    public async Task Runs_started_together_are_each_stored_once_even_with_a_key_seen_before_among_them()
    {
        await using var engine = await StartAsync(Diamond, p => p.AddDemoHandlers()
            .AddHandler("t.a", Record(_ => null)).AddHandler("t.b", Record(_ => null)).AddHandler("t.c", Record(_ => null)).AddHandler("t.d", Record(_ => null)));
        var earlier = await engine.StartRunAsync("diamond", idempotencyKey: "order-7");

        // Started at once, they are stored together; the one key seen before must not cost the others their run.
        var keys = Enumerable.Range(0, 30).Select(i => i == 15 ? "order-7" : $"burst-{i}").ToList();
        var launched = await Task.WhenAll(keys.Select(key => engine.StartRunAsync("diamond", idempotencyKey: key)));

        var again = launched[keys.IndexOf("order-7")];
        Assert.False(again.Created);
        Assert.Equal(earlier.RunId, again.RunId);
        Assert.All(launched.Where((_, i) => keys[i] != "order-7"), run => Assert.True(run.Created));
        Assert.Equal(30, launched.Select(run => run.RunId).Distinct().Count());
        foreach (var run in launched)
        {
            Assert.Equal(RunState.Succeeded, (await engine.WaitForRunAsync(run.RunId)).State);
        }
        Assert.Equal(30, await engine.Store.ReadAsync(c => c.Runs.CountAsync()));
    }

    [Fact]
    public async Task Runs_stored_together_are_started_in_a_few_messages_and_each_step_runs_once()
    {
        await using var engine = await StartAsync(Diamond, p => p.AddDemoHandlers()
            .AddHandler("t.a", Record(_ => null)).AddHandler("t.b", Record(_ => null)).AddHandler("t.c", Record(_ => null)).AddHandler("t.d", Record(_ => null)));
        var sends = new StartRunSends();
        using var observing = engine.Services.GetRequiredService<IBus>().ConnectSendObserver(sends);
        await using var writer = new Microsoft.Data.Sqlite.SqliteConnection(_database.Options.ConnectionString);
        await writer.OpenAsync();
        await using (var begin = writer.CreateCommand())
        {
            // Another writer holds the database: the first run's transaction waits, and the next ones queue behind it.
            begin.CommandText = "BEGIN EXCLUSIVE;";
            await begin.ExecuteNonQueryAsync();
        }
        var first = engine.StartRunAsync("diamond");
        await Task.Delay(TimeSpan.FromMilliseconds(300));
        var burst = Enumerable.Range(0, 2 * Core.Coordination.RunLauncher.RunsPerStartMessage + 1).Select(_ => engine.StartRunAsync("diamond")).ToList();
        await Task.Delay(TimeSpan.FromMilliseconds(300));
        await using (var commit = writer.CreateCommand())
        {
            commit.CommandText = "COMMIT;";
            await commit.ExecuteNonQueryAsync();
        }

        var launched = await Task.WhenAll(burst.Prepend(first));
        foreach (var run in launched)
        {
            Assert.Equal(RunState.Succeeded, (await engine.WaitForRunAsync(run.RunId)).State);
        }
        // The lone first run, then the burst of 51 in three messages of at most 25.
        Assert.Equal(1 + 3, sends.Count);
        Assert.Equal(launched.Select(run => run.RunId).Order(), sends.Runs.Order());
        Assert.Equal(4 * launched.Length, _executions.Count);
    }

    [Fact]
    public async Task A_start_given_up_while_earlier_runs_are_being_stored_never_stores_its_run()
    {
        await using var engine = await StartAsync(Diamond, p => p.AddDemoHandlers()
            .AddHandler("t.a", Record(_ => null)).AddHandler("t.b", Record(_ => null)).AddHandler("t.c", Record(_ => null)).AddHandler("t.d", Record(_ => null)));
        await using var writer = new Microsoft.Data.Sqlite.SqliteConnection(_database.Options.ConnectionString);
        await writer.OpenAsync();
        await using (var begin = writer.CreateCommand())
        {
            // Another writer holds the database, so the first run's transaction waits.
            begin.CommandText = "BEGIN EXCLUSIVE;";
            await begin.ExecuteNonQueryAsync();
        }
        var first = engine.StartRunAsync("diamond", idempotencyKey: "stored-first");
        await Task.Delay(TimeSpan.FromMilliseconds(300));

        using var giveUp = new CancellationTokenSource();
        var givenUp = engine.Launcher.StartAsync(new Core.Coordination.RunRequest { Pipeline = "diamond", IdempotencyKey = "given-up" }, giveUp.Token);
        await giveUp.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => givenUp);
        await using (var commit = writer.CreateCommand())
        {
            commit.CommandText = "COMMIT;";
            await commit.ExecuteNonQueryAsync();
        }

        Assert.Equal(RunState.Succeeded, (await engine.WaitForRunAsync((await first).RunId)).State);
        Assert.Null(await engine.Store.ReadAsync(c => c.Runs.SingleOrDefaultAsync(r => r.IdempotencyKey == "given-up")));
    }

    [Fact]
    public async Task Steps_skipped_in_the_current_environment_are_recorded_and_their_dependants_run()
    {
        const string yaml = """
            pipelines:
              envs:
                steps:
                  - { name: prepare, handler: t.ok }
                  - { name: publish, handler: t.ok, depends_on: [prepare], skip_in_env: [dev] }
                  - { name: notify, handler: t.ok, depends_on: [publish] }
            """;
        await using var engine = await StartAsync(yaml, p => p.AddHandler("t.ok", Record(_ => null)), environment: "dev");

        var run = await engine.WaitForRunAsync((await engine.StartRunAsync("envs")).RunId);

        Assert.Equal(RunState.Succeeded, run.State);
        Assert.Equal(StepState.Skipped, run.Steps.Single(s => s.Name == "publish").State);
        Assert.Equal(["prepare", "notify"], _executions.ToList());
    }

    [Fact]
    public async Task A_run_published_directly_on_the_bus_is_created_and_runs()
    {
        await using var engine = await StartAsync(Diamond, p => p
            .AddHandler("t.a", Record(_ => null)).AddHandler("t.b", Record(_ => null)).AddHandler("t.c", Record(_ => null)).AddHandler("t.d", Record(_ => null)));
        var runId = Guid.NewGuid();

        await engine.PublishAsync(new StartRun { RunId = runId, Pipeline = "diamond", Payload = """{"n":3}""" });
        await Task.Delay(100);
        await engine.PublishAsync(new StartRun { RunId = runId, Pipeline = "diamond", Payload = """{"n":3}""" });

        var run = await engine.WaitForRunAsync(runId);
        Assert.Equal(RunState.Succeeded, run.State);
        Assert.Equal(4, _executions.Count);
    }

    [Fact]
    public async Task A_start_published_with_a_key_in_the_schedulers_form_is_refused_and_the_fire_still_gets_its_run()
    {
        await using var engine = await StartAsync(Diamond, p => p
            .AddHandler("t.a", Record(_ => null)).AddHandler("t.b", Record(_ => null)).AddHandler("t.c", Record(_ => null)).AddHandler("t.d", Record(_ => null)));
        var fireKey = "schedule:diamond/nightly:2026-12-02T03:00:00.0000000Z";

        await engine.PublishAsync(new StartRun { RunId = Core.Coordination.RunLauncher.RunIdFor(fireKey), Pipeline = "diamond", Payload = """{"n":3}""", IdempotencyKey = fireKey, Trigger = RunTriggers.Bus });
        var after = Guid.NewGuid();
        await engine.PublishAsync(new StartRun { RunId = after, Pipeline = "diamond", Payload = """{"n":3}""", Trigger = RunTriggers.Bus });
        await engine.WaitForRunAsync(after);
        await Task.Delay(500);

        Assert.Null(await engine.Store.ReadAsync(c => c.Runs.SingleOrDefaultAsync(r => r.IdempotencyKey == fireKey)));
        var fire = await engine.Services.GetRequiredService<Core.Coordination.RunLauncher>().StartAsync(
            new Core.Coordination.RunRequest { Pipeline = "diamond", Payload = new JsonObject { ["n"] = 3 }, IdempotencyKey = fireKey, Trigger = RunTriggers.Schedule }, CancellationToken.None);
        Assert.True(fire.Created);
        Assert.Equal(RunState.Succeeded, (await engine.WaitForRunAsync(fire.RunId)).State);
    }

    [Fact]
    public async Task A_run_still_pending_is_sent_StartRun_again_less_often_the_longer_it_waits()
    {
        var clock = new FakeTimeProvider(new DateTimeOffset(2026, 12, 4, 6, 0, 0, TimeSpan.Zero));
        // No coordinator consumes StartRun here: the run stays pending however often it is sent.
        await using var engine = await EngineHost.StartAsync(EngineHost.Catalog(Diamond), _database.Options, pipelines =>
        {
            pipelines.Services.AddSingleton<TimeProvider>(clock);
            pipelines.Services.AddSingleton<Core.Coordination.RunCoordinator>();
        }, coordinator: o => o.PendingGrace = TimeSpan.FromSeconds(10));
        await engine.StartRunAsync("diamond");
        var sends = new StartRunSends();
        using var observing = engine.Services.GetRequiredService<IBus>().ConnectSendObserver(sends);
        var sweeper = ActivatorUtilities.CreateInstance<Core.Coordination.RunSweeper>(engine.Services);
        var started = clock.GetUtcNow();

        async Task<int> SweepAtAsync(int second)
        {
            clock.SetUtcNow(started + TimeSpan.FromSeconds(second));
            var before = sends.Count;
            await sweeper.SweepAsync(CancellationToken.None);
            return sends.Count - before;
        }

        // Sent again after the grace, then after waiting as long again as it had waited, up to 5 minutes.
        int[] seconds = [5, 11, 12, 21, 23, 40, 47, 90, 95, 1000, 1200, 1301, 1500, 1602];
        int[] resent = [0, 1, 0, 0, 1, 0, 1, 0, 1, 1, 0, 1, 0, 1];
        var observed = new List<int>();
        foreach (var second in seconds)
        {
            observed.Add(await SweepAtAsync(second));
        }
        Assert.Equal(resent, observed);
    }

    /// <summary>Counts the start messages sent (<see cref="StartRun"/> and <see cref="StartRuns"/>) and the runs they start.</summary>
    private sealed class StartRunSends : ISendObserver
    {
        private int _count;

        public int Count => Volatile.Read(ref _count);

        public ConcurrentQueue<Guid> Runs { get; } = new();

        public Task PreSend<T>(SendContext<T> context) where T : class => Task.CompletedTask;

        public Task PostSend<T>(SendContext<T> context) where T : class
        {
            switch (context.Message)
            {
                case StartRun start:
                    Runs.Enqueue(start.RunId);
                    break;
                case StartRuns starts:
                    foreach (var run in starts.Runs)
                    {
                        Runs.Enqueue(run.RunId);
                    }
                    break;
                default:
                    return Task.CompletedTask;
            }
            Interlocked.Increment(ref _count);
            return Task.CompletedTask;
        }

        public Task SendFault<T>(SendContext<T> context, Exception exception) where T : class => Task.CompletedTask;
    }

    private Action<PipelinesBuilder> DiamondHandlers => p => p
        .AddHandler("t.a", Record(_ => new JsonObject { ["value"] = 1 })).AddHandler("t.b", Record(_ => null))
        .AddHandler("t.c", Record(_ => null)).AddHandler("t.d", Record(_ => null));

    private static Task<ChainState> ChainStateAsync(EngineHost host, Guid runId, int chain) =>
        host.Store.ReadAsync(c => c.Chains.Where(ch => ch.RunId == runId && ch.Index == chain).Select(ch => ch.State).SingleAsync());

    /// <summary>Chains quiet for a second count as stalled (it is decided when a chain is dispatched), swept every 200 ms.</summary>
    private static void QuickStallSweep(Core.Coordination.CoordinatorOptions options)
    {
        options.SweepInterval = TimeSpan.FromMilliseconds(200);
        options.StalledChainGrace = TimeSpan.FromSeconds(1);
    }

    /// <summary>Starts the engine again, after a restart of the in-memory transport lost every message in flight: the run must still finish, every step run once.</summary>
    private async Task RestartAndSeeTheRunFinishOnceAsync(Guid runId)
    {
        await using var engine = await EngineHost.StartAsync(EngineHost.Catalog(Diamond), _database.Options, pipelines =>
        {
            pipelines.AddCoordinator().AddWorker();
            DiamondHandlers(pipelines);
        }, coordinator: QuickStallSweep);
        var run = await engine.WaitForRunAsync(runId);

        Assert.Equal(RunState.Succeeded, run.State);
        Assert.Equal(["a", "b", "c", "d"], _executions.Order(StringComparer.Ordinal));
        Assert.All(run.Steps, s => Assert.Equal(1, s.Attempts));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_chain_slip_the_transport_lost_is_sent_again_once_the_chain_has_been_quiet(bool dispatchedBeforeTheStoreHadStallChecks)
    {
        Guid runId;
        // No worker here: the first chain's slip waits in the transport, and is lost with it.
        await using (var coordinatorOnly = await EngineHost.StartAsync(EngineHost.Catalog(Diamond), _database.Options, pipelines => pipelines.AddCoordinator(), coordinator: QuickStallSweep))
        {
            runId = (await coordinatorOnly.StartRunAsync("diamond")).RunId;
            while (await ChainStateAsync(coordinatorOnly, runId, 0) != ChainState.Dispatched)
            {
                await Task.Delay(50);
            }
            if (dispatchedBeforeTheStoreHadStallChecks)
            {
                await coordinatorOnly.Store.WriteAsync(c => c.Chains.Where(ch => ch.RunId == runId)
                    .ExecuteUpdateAsync(ch => ch.SetProperty(x => x.QuietSince, (DateTimeOffset?)null).SetProperty(x => x.StallCheckAt, (DateTimeOffset?)null)), CancellationToken.None);
            }
        }

        await RestartAndSeeTheRunFinishOnceAsync(runId);
    }

    [Fact]
    public async Task A_chain_end_the_transport_lost_is_taken_from_its_steps_and_the_run_goes_on()
    {
        Guid runId;
        // No coordinator here: step a runs, and the end of its slip waits in the transport for a
        // coordinator, and is lost with it. The test plays the coordinator's first move itself.
        await using (var workerOnly = await EngineHost.StartAsync(EngineHost.Catalog(Diamond), _database.Options, pipelines =>
        {
            pipelines.AddWorker();
            DiamondHandlers(pipelines);
        }, coordinator: QuickStallSweep))
        {
            runId = (await workerOnly.StartRunAsync("diamond")).RunId;
            var coordinator = ActivatorUtilities.CreateInstance<Core.Coordination.RunCoordinator>(workerOnly.Services);
            var started = await coordinator.StartAsync(new StartRun { RunId = runId, Pipeline = "diamond" }, CancellationToken.None);
            var bus = workerOnly.Services.GetRequiredService<IBus>();
            foreach (var slip in started.Slips)
            {
                await bus.Execute(slip);
            }
            await workerOnly.WaitForStepAsync(runId, "a", StepState.Succeeded);
            await Task.Delay(200);
            Assert.Equal(ChainState.Dispatched, await ChainStateAsync(workerOnly, runId, 0));
        }

        await RestartAndSeeTheRunFinishOnceAsync(runId);
    }

    [Fact]
    public async Task A_step_running_longer_than_the_stall_grace_is_left_alone()
    {
        const string yaml = """
            pipelines:
              long:
                steps:
                  - { name: sleepy, handler: demo.sleep }
                  - { name: after, handler: t.ok, depends_on: [sleepy] }
            """;
        await using var engine = await EngineHost.StartAsync(EngineHost.Catalog(yaml), _database.Options, pipelines => pipelines
            .AddCoordinator().AddWorker().AddDemoHandlers().AddHandler("t.ok", Record(_ => null)), coordinator: QuickStallSweep);

        var run = await engine.WaitForRunAsync((await engine.StartRunAsync("long", new JsonObject { ["sleep_ms"] = 3000 })).RunId);

        Assert.Equal(RunState.Succeeded, run.State);
        Assert.All(run.Steps, s => Assert.Equal(1, s.Attempts));
        Assert.Equal(["after"], _executions.ToList());
    }

    [Fact]
    public async Task A_step_longer_than_the_delivery_hold_detaches_and_completes_once()
    {
        const string yaml = """
            pipelines:
              long:
                steps:
                  - { name: sleepy, handler: demo.sleep }
                  - { name: after, handler: t.ok, depends_on: [sleepy] }
            """;
        await using var engine = await StartAsync(yaml, p => p.AddDemoHandlers().AddHandler("t.ok", Record(c => c.Inputs["sleepy"]!.DeepClone())),
            worker => worker.HoldDeliveryFor = TimeSpan.FromMilliseconds(300));

        var run = await engine.WaitForRunAsync((await engine.StartRunAsync("long", new JsonObject { ["sleep_ms"] = 1500 })).RunId);

        Assert.Equal(RunState.Succeeded, run.State);
        var sleepy = run.Steps.Single(s => s.Name == "sleepy");
        Assert.True(sleepy.Detached);
        Assert.Equal(1, sleepy.Attempts);
        Assert.Equal("""{"slept_ms":1500,"attempt":1}""", sleepy.Output);
        Assert.Equal("""{"slept_ms":1500,"attempt":1}""", run.Steps.Single(s => s.Name == "after").Output);
    }

    [Fact]
    public async Task Each_run_is_one_trace_from_launch_through_every_step_even_when_started_together()
    {
        var spans = new ConcurrentBag<System.Diagnostics.Activity>();
        using var listener = new System.Diagnostics.ActivityListener
        {
            ShouldListenTo = source => source.Name is Core.Telemetry.PipelinesTelemetry.Name or "MassTransit",
            Sample = (ref System.Diagnostics.ActivityCreationOptions<System.Diagnostics.ActivityContext> _) => System.Diagnostics.ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = spans.Add,
        };
        System.Diagnostics.ActivitySource.AddActivityListener(listener);
        await using var engine = await StartAsync(Diamond, p => p
            .AddHandler("t.a", Record(_ => null)).AddHandler("t.b", Record(_ => null)).AddHandler("t.c", Record(_ => null)).AddHandler("t.d", Record(_ => null)));

        // Started together, the runs are stored and sent in one batch: each must still be a trace of its own.
        var launched = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => engine.StartRunAsync("diamond")));

        foreach (var started in launched)
        {
            var run = await engine.WaitForRunAsync(started.RunId);
            var traceId = System.Diagnostics.ActivityContext.Parse(run.TraceParent!, null).TraceId;
            var steps = spans.Where(s => s.OperationName.StartsWith("step ", StringComparison.Ordinal) && (string?)s.GetTagItem("pipelines.run_id") == run.Id.ToString()).ToList();
            Assert.Equal(["step a", "step b", "step c", "step d"], steps.Select(s => s.OperationName).Order(StringComparer.Ordinal));
            Assert.All(steps, s => Assert.Equal(traceId, s.TraceId));
        }
    }

    [Fact]
    public async Task The_example_pipeline_runs_on_the_demo_handlers()
    {
        var catalog = Core.Planning.PipelineCatalog.Load(Pipelines.Tests.RepositoryRoot.File("config/pipelines.yaml"));
        await using var engine = await EngineHost.StartAsync(catalog, _database.Options, p => p.AddCoordinator().AddWorker().AddDemoHandlers());

        var run = await engine.WaitForRunAsync((await engine.StartRunAsync("orders-report", new JsonObject { ["orders"] = 6 })).RunId);

        Assert.Equal(RunState.Succeeded, run.State);
        Assert.StartsWith("""{"report":"6 orders from""", run.Steps.Single(s => s.Name == "build-report").Output, StringComparison.Ordinal);
    }
}
