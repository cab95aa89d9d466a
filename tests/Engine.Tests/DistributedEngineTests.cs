using System.Diagnostics;
using System.Text.Json.Nodes;
using Microsoft.EntityFrameworkCore;
using Pipelines.Core.Hosting;
using Pipelines.Core.Persistence;
using Pipelines.Core.Planning;
using Pipelines.Core.Runs;
using Pipelines.Tests;

namespace Pipelines.Engine.Tests;

/// <summary>
/// The distributed deployment: the coordinator in the test process, two worker processes consuming
/// the same queues, RabbitMQ and PostgreSQL. Executions are counted from a side-effect ledger the
/// workers' handlers append to, not from the run store the engine itself writes.
/// </summary>
public sealed class DistributedEngineTests : IAsyncLifetime
{
    private const string Definitions = """
        pipelines:
          diamond:
            steps:
              - { name: a, handler: demo.echo }
              - { name: b, handler: demo.echo, depends_on: [a] }
              - { name: c, handler: demo.echo, depends_on: [a] }
              - { name: d, handler: demo.echo, depends_on: [b, c] }
          fan:
            steps:
              - { name: start, handler: demo.echo }
              - { name: w01, handler: demo.echo, depends_on: [start] }
              - { name: w02, handler: demo.echo, depends_on: [start] }
              - { name: w03, handler: demo.echo, depends_on: [start] }
              - { name: w04, handler: demo.echo, depends_on: [start] }
              - { name: w05, handler: demo.echo, depends_on: [start] }
              - { name: w06, handler: demo.echo, depends_on: [start] }
              - { name: w07, handler: demo.echo, depends_on: [start] }
              - { name: w08, handler: demo.echo, depends_on: [start] }
              - { name: w09, handler: demo.echo, depends_on: [start] }
              - { name: w10, handler: demo.echo, depends_on: [start] }
              - { name: w11, handler: demo.echo, depends_on: [start] }
              - { name: w12, handler: demo.echo, depends_on: [start] }
              - { name: w13, handler: demo.echo, depends_on: [start] }
              - { name: w14, handler: demo.echo, depends_on: [start] }
              - { name: w15, handler: demo.echo, depends_on: [start] }
              - { name: w16, handler: demo.echo, depends_on: [start] }
              - { name: w17, handler: demo.echo, depends_on: [start] }
              - { name: w18, handler: demo.echo, depends_on: [start] }
              - { name: join, handler: demo.echo, depends_on: [w01, w02, w03, w04, w05, w06, w07, w08, w09, w10, w11, w12, w13, w14, w15, w16, w17, w18] }
          slow:
            steps:
              - { name: first, handler: demo.echo }
              - { name: sleepy, handler: demo.sleep, depends_on: [first] }
              - { name: last, handler: demo.echo, depends_on: [sleepy] }
        """;

    private readonly string _folder = Directory.CreateTempSubdirectory("pipelines-distributed-").FullName;
    private readonly List<WorkerProcess> _workers = [];
    private ScratchPostgres? _database;
    private ScratchVhost? _vhost;
    private EngineHost? _coordinator;
    private Dictionary<string, string>? _environment;

    private string Ledger => Path.Combine(_folder, "ledger");

    private string DefinitionFile => Path.Combine(_folder, "pipelines.yaml");

    public async Task InitializeAsync()
    {
        // Only tests that ServiceFact did not skip get here: the services must answer.
        await File.WriteAllTextAsync(DefinitionFile, Definitions);
        Directory.CreateDirectory(Ledger);
        _database = await ScratchPostgres.CreateAsync("engine_tests");
        _vhost = await ScratchVhost.CreateAsync("engine-tests");
    }

    private RunStoreOptions Database => new() { Provider = RunStoreProvider.PostgreSql, ConnectionString = _database!.ConnectionString };

    /// <summary>Starts the coordinator here (it migrates the store) and two worker processes, and waits until both consume.</summary>
    private async Task<EngineHost> DeployAsync(TimeSpan? holdDeliveryFor = null, TimeSpan? gracePeriod = null)
    {
        _coordinator = await EngineHost.StartAsync(
            PipelineCatalog.Load(DefinitionFile), Database, pipelines => pipelines.AddCoordinator(),
            options =>
            {
                options.Transport = TransportKind.RabbitMq;
                options.RabbitMq = _vhost!.Uri;
            },
            coordinator: options => options.SweepInterval = TimeSpan.FromMilliseconds(500));
        _environment = new Dictionary<string, string>
        {
            ["Pipelines__Transport"] = "RabbitMq",
            ["Pipelines__RabbitMq"] = _vhost!.Uri,
            ["Pipelines__Database__Provider"] = "PostgreSql",
            ["Pipelines__Database__ConnectionString"] = _database!.ConnectionString,
            ["Pipelines__Definitions"] = DefinitionFile,
            ["Pipelines__Worker__LeaseDuration"] = "00:00:03",
            ["Pipelines__Worker__GracePeriod"] = (gracePeriod ?? TimeSpan.FromSeconds(30)).ToString("c"),
            ["Pipelines__Worker__HoldDeliveryFor"] = (holdDeliveryFor ?? TimeSpan.FromMinutes(5)).ToString("c"),
            ["PIPELINES_LEDGER"] = Ledger,
            // What a worker does with each step delivery, for the tests that watch for it.
            ["Logging__LogLevel__Pipelines.Workers.Steps.StepRunner"] = "Information",
        };
        _workers.Add(WorkerProcess.Start("worker-1", _environment));
        _workers.Add(WorkerProcess.Start("worker-2", _environment));
        var deadline = Stopwatch.StartNew();
        while (await _vhost.ConsumersAsync(StepQueues.ForHandler("demo.sleep")) < 2)
        {
            Assert.True(deadline.Elapsed < TimeSpan.FromSeconds(60), $"workers did not start consuming:\n{string.Join("\n", _workers.Select(w => w.Output))}");
            await Task.Delay(200);
        }
        return _coordinator;
    }

    private List<(Guid Run, string Step, int Attempt)> ReadLedger() => Directory.EnumerateFiles(Ledger)
        .SelectMany(File.ReadAllLines)
        .Select(line => line.Split(' '))
        .Select(p => (Guid.Parse(p[0]), p[1], int.Parse(p[2], System.Globalization.CultureInfo.InvariantCulture)))
        .OrderBy(e => e.Item3)
        .ToList();

    [ServiceFact(postgres: true, rabbitMq: true)]
    public async Task Every_step_runs_exactly_once_per_run_across_two_worker_processes()
    {
        var engine = await DeployAsync();

        var launched = new List<Guid>();
        for (var i = 0; i < 20; i++)
        {
            launched.Add((await engine.StartRunAsync(i % 2 == 0 ? "diamond" : "fan")).RunId);
        }
        foreach (var run in launched)
        {
            Assert.Equal(RunState.Succeeded, (await engine.WaitForRunAsync(run, TimeSpan.FromSeconds(90))).State);
        }

        var executions = ReadLedger();
        Assert.Equal(10 * 4 + 10 * 20, executions.Count);
        Assert.Equal(executions.Count, executions.Select(e => (e.Run, e.Step)).Distinct().Count());
        Assert.All(executions, e => Assert.Equal(1, e.Attempt));
    }

    [ServiceFact(postgres: true, rabbitMq: true)]
    public async Task A_hundred_concurrent_runs_of_a_twenty_step_dag_all_complete()
    {
        var engine = await DeployAsync();

        var runs = await Task.WhenAll(Enumerable.Range(0, 100).Select(_ => engine.StartRunAsync("fan")));
        foreach (var run in runs)
        {
            Assert.Equal(RunState.Succeeded, (await engine.WaitForRunAsync(run.RunId, TimeSpan.FromSeconds(180))).State);
        }

        var executions = ReadLedger();
        Assert.Equal(100 * 20, executions.Count);
        Assert.Equal(executions.Count, executions.Select(e => (e.Run, e.Step)).Distinct().Count());
    }

    [ServiceFact(postgres: true, rabbitMq: true)]
    public async Task A_worker_killed_mid_step_has_its_step_taken_over_by_the_other_worker()
    {
        var engine = await DeployAsync();
        var launched = await engine.StartRunAsync("slow", new JsonObject { ["sleep_ms"] = 4000 });
        await engine.WaitForStepAsync(launched.RunId, "sleepy", StepState.Running);
        var victim = await OwnerOfAsync(engine, launched.RunId, "sleepy");

        victim.Kill();

        var run = await engine.WaitForRunAsync(launched.RunId, TimeSpan.FromSeconds(60));
        Assert.Equal(RunState.Succeeded, run.State);
        var sleepy = run.Steps.Single(s => s.Name == "sleepy");
        Assert.Equal(2, sleepy.Attempts);
        var attempts = (await engine.AttemptsAsync(run.Id)).Where(a => a.Step == "sleepy").ToList();
        Assert.Equal([(1, StepState.Failed, "worker-lost"), (2, StepState.Succeeded, (string?)null)], attempts.Select(a => (a.Number, a.State, a.ErrorKind)));
        Assert.StartsWith(victim.Id, attempts[0].Worker, StringComparison.Ordinal);
        Assert.DoesNotContain(victim.Id, attempts[1].Worker, StringComparison.Ordinal);
        Assert.Equal([1, 2], ReadLedger().Where(e => e.Step == "sleepy").Select(e => e.Attempt));
    }

    [ServiceFact(postgres: true, rabbitMq: true)]
    public async Task A_worker_stopped_with_SIGTERM_finishes_its_step_within_the_grace_period()
    {
        var engine = await DeployAsync(gracePeriod: TimeSpan.FromSeconds(20));
        var launched = await engine.StartRunAsync("slow", new JsonObject { ["sleep_ms"] = 3000 });
        await engine.WaitForStepAsync(launched.RunId, "sleepy", StepState.Running);
        var owner = await OwnerOfAsync(engine, launched.RunId, "sleepy");

        Assert.Equal(0, await owner.TerminateAsync(TimeSpan.FromSeconds(30)));

        var run = await engine.WaitForRunAsync(launched.RunId, TimeSpan.FromSeconds(30));
        Assert.Equal(RunState.Succeeded, run.State);
        var attempts = (await engine.AttemptsAsync(run.Id)).Where(a => a.Step == "sleepy").ToList();
        Assert.Equal((1, StepState.Succeeded), (attempts.Single().Number, attempts.Single().State));
        Assert.StartsWith(owner.Id, attempts.Single().Worker, StringComparison.Ordinal);
    }

    [ServiceFact(postgres: true, rabbitMq: true)]
    public async Task A_step_outlasting_the_grace_period_is_handed_back_and_finished_by_another_worker()
    {
        var engine = await DeployAsync(gracePeriod: TimeSpan.FromSeconds(1));
        var launched = await engine.StartRunAsync("slow", new JsonObject { ["sleep_ms"] = 6000 });
        await engine.WaitForStepAsync(launched.RunId, "sleepy", StepState.Running);
        var owner = await OwnerOfAsync(engine, launched.RunId, "sleepy");

        Assert.Equal(0, await owner.TerminateAsync(TimeSpan.FromSeconds(30)));

        var run = await engine.WaitForRunAsync(launched.RunId, TimeSpan.FromSeconds(60));
        Assert.Equal(RunState.Succeeded, run.State);
        var attempts = (await engine.AttemptsAsync(run.Id)).Where(a => a.Step == "sleepy").ToList();
        Assert.Equal([(1, StepState.Cancelled, "handed-back"), (2, StepState.Succeeded, (string?)null)], attempts.Select(a => (a.Number, a.State, a.ErrorKind)));
        Assert.DoesNotContain(owner.Id, attempts[1].Worker, StringComparison.Ordinal);
    }

    [ServiceFact(postgres: true, rabbitMq: true)]
    public async Task A_worker_stopping_while_a_step_waits_for_another_workers_lease_hands_the_step_back_at_once()
    {
        var engine = await DeployAsync();
        var waiter = _workers[0];
        Assert.Equal(0, await _workers[1].TerminateAsync(TimeSpan.FromSeconds(30)));
        var launched = await engine.StartRunAsync("slow", new JsonObject { ["sleep_ms"] = 1000 });
        // As if a worker elsewhere had claimed 'last' and were still running it.
        await SetLeaseAsync(engine, launched.RunId, "last", StepState.Running, "elsewhere/1", DateTimeOffset.UtcNow.AddMinutes(10));
        var waiting = Stopwatch.StartNew();
        while (!waiter.Output.Contains("step 'last' is running under a lease held until", StringComparison.Ordinal))
        {
            Assert.True(waiting.Elapsed < TimeSpan.FromSeconds(30), $"the worker never waited for the lease:\n{waiter.Output}");
            await Task.Delay(100);
        }

        var stopping = Stopwatch.StartNew();
        Assert.Equal(0, await waiter.TerminateAsync(TimeSpan.FromSeconds(60)));

        // Not held until the host gives up on it: the delivery goes back to the queue as the stop begins.
        Assert.True(stopping.Elapsed < TimeSpan.FromSeconds(10), $"the worker took {stopping.Elapsed} to stop:\n{waiter.Output}");
        Assert.DoesNotContain("Exception", waiter.Output, StringComparison.Ordinal);
        await SetLeaseAsync(engine, launched.RunId, "last", StepState.Pending, owner: null, expires: null);
        var successor = WorkerProcess.Start("worker-3", _environment!);
        _workers.Add(successor);
        var run = await engine.WaitForRunAsync(launched.RunId, TimeSpan.FromSeconds(60));
        Assert.Equal(RunState.Succeeded, run.State);
        var last = (await engine.AttemptsAsync(run.Id)).Single(a => a.Step == "last");
        Assert.StartsWith(successor.Id, last.Worker, StringComparison.Ordinal);
    }

    private static async Task SetLeaseAsync(EngineHost engine, Guid runId, string step, StepState state, string? owner, DateTimeOffset? expires) =>
        Assert.Equal(1, await engine.Store.WriteAsync(c => c.Steps.Where(s => s.RunId == runId && s.Name == step).ExecuteUpdateAsync(s => s
            .SetProperty(x => x.State, state)
            .SetProperty(x => x.LeaseOwner, owner)
            .SetProperty(x => x.LeaseExpiresAt, expires)), CancellationToken.None));

    private async Task<WorkerProcess> OwnerOfAsync(EngineHost engine, Guid runId, string step)
    {
        var owner = await engine.Store.ReadAsync(c => c.Steps.Where(s => s.RunId == runId && s.Name == step).Select(s => s.LeaseOwner).SingleAsync());
        return _workers.Single(w => owner!.StartsWith($"{w.Id}/", StringComparison.Ordinal));
    }

    [ServiceFact(postgres: true, rabbitMq: true)]
    public async Task Racing_starts_with_one_idempotency_key_create_one_run_and_cost_the_runs_started_with_them_nothing()
    {
        var engine = await DeployAsync();

        // Started at once, the runs are stored together; the racing copies of one key fail that batch, and
        // every run must still be stored once.
        var keys = Enumerable.Range(0, 24).Select(i => i % 3 == 0 ? "invoice-2026-11" : $"order-{i}").ToList();
        var launched = await Task.WhenAll(keys.Select(key => engine.StartRunAsync("diamond", idempotencyKey: key)));

        var racing = launched.Where((_, i) => keys[i] == "invoice-2026-11").ToList();
        Assert.Single(racing.Select(l => l.RunId).Distinct());
        Assert.Single(racing, l => l.Created);
        Assert.All(launched.Where((_, i) => keys[i] != "invoice-2026-11"), l => Assert.True(l.Created));
        foreach (var run in launched.DistinctBy(l => l.RunId))
        {
            Assert.Equal(RunState.Succeeded, (await engine.WaitForRunAsync(run.RunId, TimeSpan.FromSeconds(90))).State);
        }
        Assert.Equal(17, await engine.Store.ReadAsync(c => c.Runs.CountAsync()));
        Assert.Equal(17 * 4, ReadLedger().Count);
    }

    [ServiceFact(postgres: true, rabbitMq: true)]
    public async Task A_step_longer_than_the_brokers_acknowledgement_timeout_completes_once()
    {
        using var shortTimeout = await BrokerConsumerTimeout.SetAsync(TimeSpan.FromSeconds(5));
        var engine = await DeployAsync(holdDeliveryFor: TimeSpan.FromSeconds(2));

        var launched = await engine.StartRunAsync("slow", new JsonObject { ["sleep_ms"] = 12_000 });
        var run = await engine.WaitForRunAsync(launched.RunId, TimeSpan.FromSeconds(60));

        Assert.Equal(RunState.Succeeded, run.State);
        Assert.Equal(1, run.Steps.Single(s => s.Name == "sleepy").Attempts);
        Assert.Single(ReadLedger(), e => e.Step == "sleepy");
        Assert.All(_workers, w => Assert.False(w.HasExited, w.Output));
        // The consumers are still there after the long step: a second run goes through.
        var second = await engine.StartRunAsync("slow", new JsonObject { ["sleep_ms"] = 10 });
        Assert.Equal(RunState.Succeeded, (await engine.WaitForRunAsync(second.RunId, TimeSpan.FromSeconds(30))).State);
    }

    public async Task DisposeAsync()
    {
        foreach (var worker in _workers)
        {
            worker.Dispose();
        }
        if (_coordinator is not null)
        {
            await _coordinator.DisposeAsync();
        }
        if (_vhost is not null)
        {
            await _vhost.DisposeAsync();
        }
        if (_database is not null)
        {
            await _database.DisposeAsync();
        }
        Directory.Delete(_folder, recursive: true);
    }
}

/// <summary>
/// Shortens RabbitMQ's delivery acknowledgement timeout (node-wide in 3.10, read by each channel when
/// it opens) and the channel tick that enforces it; restores the defaults on dispose.
/// </summary>
internal sealed class BrokerConsumerTimeout : IDisposable
{
    public static async Task<BrokerConsumerTimeout> SetAsync(TimeSpan timeout)
    {
        await RabbitMqCtlAsync($"application:set_env(rabbit, consumer_timeout, {(long)timeout.TotalMilliseconds}).");
        await RabbitMqCtlAsync("application:set_env(rabbit, channel_tick_interval, 1000).");
        return new BrokerConsumerTimeout();
    }

    public void Dispose()
    {
        RabbitMqCtlAsync("application:set_env(rabbit, consumer_timeout, 1800000).").GetAwaiter().GetResult();
        RabbitMqCtlAsync("application:set_env(rabbit, channel_tick_interval, 60000).").GetAwaiter().GetResult();
    }

    private static async Task RabbitMqCtlAsync(string expression)
    {
        using var process = Process.Start(new ProcessStartInfo("rabbitmqctl", ["eval", expression]) { RedirectStandardOutput = true, RedirectStandardError = true })
            ?? throw new InvalidOperationException("rabbitmqctl not found");
        await process.WaitForExitAsync();
        Assert.True(process.ExitCode == 0, $"rabbitmqctl eval failed: {await process.StandardError.ReadToEndAsync()}");
    }
}
