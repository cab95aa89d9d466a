using MassTransit;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;
using Npgsql;
using Pipelines.Core.Contracts;
using Pipelines.Core.Coordination;
using Pipelines.Core.Hosting;
using Pipelines.Core.Persistence;
using Pipelines.Core.Planning;
using Pipelines.Core.Runs;

namespace Pipelines.Bench.Benchmarks.Engine;

/// <summary>
/// This engine, distributed: the coordinator (with the run launcher, the client role) in this
/// process and the worker program as a process of its own, on RabbitMQ and PostgreSQL, each with the
/// settings a deployment has by default. One run is one pipeline run, from
/// <see cref="RunLauncher.StartAsync"/> until the coordinator publishes <see cref="RunFinished"/>;
/// the step and run timestamps for latency come from the run store afterwards.
/// </summary>
internal sealed class EngineTarget(BenchServices services, EnginePipeline pipeline, string definitions) : BenchTarget
{
    /// <summary>An idle PostgreSQL backend reports its counters up to 10 s late (PGSTAT_IDLE_INTERVAL).</summary>
    private static readonly TimeSpan StatisticsFlushDelay = TimeSpan.FromSeconds(11);

    private static readonly TimeSpan StopGrace = TimeSpan.FromSeconds(30);

    private readonly Completions<RunState> _finished = new();
    private IHost? _coordinator;
    private RunLauncher? _launcher;
    private WorkerProcess? _worker;
    private long? _workerPeak;

    public override string Key => $"engine-{pipeline.Name}";

    public override string Name => $"engine: {pipeline.Description}";

    public override int StepsPerRun => pipeline.Steps;

    public override long? WorkerPeakWorkingSet => _workerPeak ?? _worker?.PeakWorkingSet;

    /// <summary>The worker's working set now.</summary>
    public long WorkerWorkingSet => _worker!.WorkingSet;

    public override async Task PrepareAsync(CancellationToken cancellationToken)
    {
        VirtualHost = await services.CreateVirtualHostAsync($"engine-{pipeline.Name}", cancellationToken);
        Database = await services.CreateDatabaseAsync($"engine_{pipeline.Name}", cancellationToken);
        // Migrated here so that the schema is in place before the counters' baseline; the roles then find nothing to do.
        using var store = new RunStore(DatabaseOptions("pipelines-bench"));
        await store.MigrateAsync(cancellationToken);
    }

    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        _worker = WorkerProcess.Start(Path.GetDirectoryName(definitions)!, new Dictionary<string, string>
        {
            ["Pipelines__Transport"] = nameof(TransportKind.RabbitMq),
            ["Pipelines__RabbitMq"] = services.Amqp(VirtualHost!).ToString(),
            ["Pipelines__Database__Provider"] = nameof(RunStoreProvider.PostgreSql),
            ["Pipelines__Database__ConnectionString"] = services.ConnectionString(Database!, "pipelines-worker"),
            ["Pipelines__Definitions"] = definitions,
            ["Pipelines__Worker__Id"] = "bench-worker",
            ["Logging__LogLevel__Default"] = "Warning",
            ["DOTNET_ENVIRONMENT"] = "Production",
        });

        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Logging.AddFilter(level => level >= LogLevel.Warning)
            .AddSimpleConsole(console => console.SingleLine = true)
            .Services.Configure<ConsoleLoggerOptions>(console => console.LogToStandardErrorThreshold = LogLevel.Trace);
        builder.Services.AddSingleton<IPipelinesEndpoints>(new RunFinishedListener(_finished));
        builder.Services.AddPipelines(new ConfigurationBuilder().Build(), options =>
        {
            options.Transport = TransportKind.RabbitMq;
            options.RabbitMq = services.Amqp(VirtualHost!).ToString();
            options.Database = DatabaseOptions("pipelines-coordinator");
            options.Definitions = definitions;
        }).AddCoordinator();
        _coordinator = builder.Build();
        await _coordinator.StartAsync(cancellationToken);
        _launcher = _coordinator.Services.GetRequiredService<RunLauncher>();
        await WaitForWorkerAsync(cancellationToken);
    }

    protected override async Task<RunSample> RunAsync(CancellationToken cancellationToken)
    {
        var issued = DateTimeOffset.UtcNow;
        var run = await _launcher!.StartAsync(new RunRequest { Pipeline = pipeline.Name }, cancellationToken);
        var state = await _finished.WaitAsync(run.RunId, cancellationToken);
        if (state != RunState.Succeeded)
        {
            throw new InvalidOperationException($"{Name}: run {run.RunId} ended {state}; worker output:{Environment.NewLine}{_worker!.RecentOutput}");
        }
        return new RunSample(run.RunId, issued);
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await StopCoordinatorAsync();
        if (_worker is not null)
        {
            _workerPeak = _worker.PeakWorkingSet;
            await _worker.StopAsync(StopGrace);
            _worker.Dispose();
            _worker = null;
        }
    }

    /// <summary>Start-to-first-step: the earliest step <c>StartedAt</c> (set when a worker claims it); end to end: the run's <c>FinishedAt</c>.</summary>
    public override async Task<IReadOnlyList<RunLatency>> LatenciesAsync(IReadOnlyList<RunSample> samples, CancellationToken cancellationToken)
    {
        using var store = new RunStore(DatabaseOptions("pipelines-bench"));
        var ids = samples.Select(s => s.Id).ToList();
        var runs = await store.ReadAsync(context => context.Runs
            .Where(r => ids.Contains(r.Id))
            .Select(r => new { r.Id, r.FinishedAt, FirstStep = context.Steps.Where(s => s.RunId == r.Id).Min(s => s.StartedAt) })
            .ToDictionaryAsync(r => r.Id, cancellationToken));
        NpgsqlConnection.ClearAllPools();
        return samples.Select(s => new RunLatency(runs[s.Id].FirstStep!.Value - s.Issued, runs[s.Id].FinishedAt!.Value - s.Issued)).ToList();
    }

    /// <summary>
    /// The worker's database traffic while idle: the coordinator is stopped and this process's
    /// connections closed, so that only the worker is connected; after the counters have caught up
    /// with its last steps, they are read around <paramref name="window"/>, and once more after the
    /// worker exited (which is when its last counts are certain to be in).
    /// </summary>
    public async Task<IdleWorker> MeasureIdleAsync(TimeSpan window, CancellationToken cancellationToken)
    {
        await StopCoordinatorAsync();
        NpgsqlConnection.ClearAllPools();
        await Task.Delay(StatisticsFlushDelay, cancellationToken);
        var (connections, before) = await services.CountersAsync(Database!, cancellationToken);
        await Task.Delay(window, cancellationToken);
        var workingSet = _worker!.WorkingSet;
        await StopAsync(cancellationToken);
        var after = await services.SettledCountersAsync(Database!, cancellationToken);
        return new IdleWorker(workingSet, connections, after - before, window);
    }

    public override async ValueTask DisposeAsync()
    {
        await StopCoordinatorAsync();
        _worker?.Dispose();
        _worker = null;
    }

    private async Task StopCoordinatorAsync()
    {
        if (_coordinator is not null)
        {
            await _coordinator.StopAsync(CancellationToken.None);
            _coordinator.Dispose();
            _coordinator = null;
        }
    }

    private RunStoreOptions DatabaseOptions(string application) => new()
    {
        Provider = RunStoreProvider.PostgreSql,
        ConnectionString = services.ConnectionString(Database!, application),
    };

    private async Task WaitForWorkerAsync(CancellationToken cancellationToken)
    {
        var queue = StepQueues.ForHandler(EnginePipelines.Handler);
        var deadline = DateTimeOffset.UtcNow + TimeSpan.FromSeconds(60);
        while (await services.ConsumersAsync(VirtualHost!, queue, cancellationToken) == 0)
        {
            if (_worker!.HasExited || DateTimeOffset.UtcNow > deadline)
            {
                throw new InvalidOperationException(
                    $"{Name}: the worker process {(_worker.HasExited ? "exited" : "did not consume")} {queue} within 60 s; its output:{Environment.NewLine}{_worker.RecentOutput}");
            }
            await Task.Delay(100, cancellationToken);
        }
    }

    /// <summary>Hears every run's end on a temporary queue of the coordinator's bus (no extra message: the coordinator publishes <see cref="RunFinished"/> anyway).</summary>
    private sealed class RunFinishedListener(Completions<RunState> finished) : IPipelinesEndpoints
    {
        public void Configure(IBusRegistrationContext context, IReceiveConfigurator configurator) =>
            configurator.ReceiveEndpoint(new TemporaryEndpointDefinition(), KebabCaseEndpointNameFormatter.Instance, endpoint =>
                endpoint.Handler<RunFinished>(message =>
                {
                    finished.Complete(message.Message.RunId, message.Message.State);
                    return Task.CompletedTask;
                }));
    }
}

/// <summary>An idle worker: its working set, its open database connections, and its database traffic over a window.</summary>
internal sealed record IdleWorker(long WorkingSet, int Connections, DatabaseCounters Traffic, TimeSpan Window)
{
    public double TransactionsPerSecond => (Traffic.Commits + Traffic.Rollbacks) / Window.TotalSeconds;
}
