using System.Collections.Concurrent;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;
using Pipelines.Core.Definitions;
using Pipelines.Core.Hosting;
using Pipelines.Core.Persistence;
using Pipelines.Core.Planning;
using Pipelines.Core.Runs;
using Pipelines.Scheduler.Hosting;
using Pipelines.Scheduler.Schedules;
using Pipelines.Tests;

// The tests measure fire lateness against the wall clock; classes running side by side on two cores
// would measure each other.
[assembly: CollectionBehavior(DisableTestParallelization = true)]

namespace Pipelines.Scheduler.Tests;

/// <summary>A database of its own for one test class (<see cref="ScratchPostgres"/>), as an xunit class fixture.</summary>
public sealed class ScratchDatabase : IAsyncLifetime
{
    private ScratchPostgres? _database;

    public RunStoreOptions Options => new() { Provider = RunStoreProvider.PostgreSql, ConnectionString = _database!.ConnectionString };

    public async Task InitializeAsync()
    {
        if (!TestServices.IsCi && !TestServices.PostgresUp)
        {
            return; // every test of the class is skipped by ServiceFact
        }
        _database = await ScratchPostgres.CreateAsync("scheduler_tests");
    }

    public async Task DisposeAsync()
    {
        if (_database is not null)
        {
            await _database.DisposeAsync();
        }
    }

    /// <summary>A schedule's cron trigger as Quartz stored it: its state and next fire time, which Quartz's API adjusts on the way out.</summary>
    public async Task<(string State, DateTimeOffset NextFireTime)> StoredTriggerAsync(string schedule)
    {
        await using var connection = new NpgsqlConnection(_database!.ConnectionString);
        await connection.OpenAsync();
        await using var read = new NpgsqlCommand("SELECT trigger_state, next_fire_time FROM qrtz_triggers WHERE trigger_group = 'pipelines' AND trigger_name = @schedule", connection);
        read.Parameters.AddWithValue("schedule", schedule);
        await using var row = await read.ExecuteReaderAsync();
        Assert.True(await row.ReadAsync(), $"no trigger stored for {schedule}");
        return (row.GetString(0), new DateTimeOffset(row.GetInt64(1), TimeSpan.Zero));
    }

    /// <summary>The due time of a fire of <paramref name="schedule"/> taken by a replica and not yet recorded as fired, if there is one.</summary>
    public async Task<DateTimeOffset?> TakenFireAsync(string schedule)
    {
        await using var connection = new NpgsqlConnection(_database!.ConnectionString);
        await connection.OpenAsync();
        await using var read = new NpgsqlCommand(
            "SELECT sched_time FROM qrtz_fired_triggers WHERE trigger_group = 'pipelines' AND trigger_name = @schedule AND state = 'ACQUIRED'", connection);
        read.Parameters.AddWithValue("schedule", schedule);
        return await read.ExecuteScalarAsync() is long ticks ? new DateTimeOffset(ticks, TimeSpan.Zero) : null;
    }

    /// <summary>
    /// Waits until a fire of <paramref name="schedule"/> due after <paramref name="after"/> is recorded as
    /// fired in Quartz's store; its due time, and when the test saw the record.
    /// </summary>
    public async Task<(DateTimeOffset Due, DateTimeOffset SeenAt)> FireRecordedAsync(string schedule, DateTimeOffset after, TimeSpan timeout)
    {
        await using var connection = new NpgsqlConnection(_database!.ConnectionString);
        await connection.OpenAsync();
        var deadline = DateTimeOffset.UtcNow + timeout;
        while (DateTimeOffset.UtcNow < deadline)
        {
            await using var read = new NpgsqlCommand(
                "SELECT sched_time FROM qrtz_fired_triggers WHERE trigger_group = 'pipelines' AND trigger_name = @schedule AND state = 'EXECUTING' AND sched_time > @after", connection);
            read.Parameters.AddWithValue("schedule", schedule);
            read.Parameters.AddWithValue("after", after.UtcTicks);
            if (await read.ExecuteScalarAsync() is long ticks)
            {
                return (new DateTimeOffset(ticks, TimeSpan.Zero), DateTimeOffset.UtcNow);
            }
            await Task.Delay(10);
        }
        throw new TimeoutException($"no fire of {schedule} after {after:O} was recorded within {timeout}");
    }
}

/// <summary>
/// One process of the deployment, for a test: the run store and launcher on MassTransit's in-memory bus
/// (nothing consumes StartRun, so runs stay pending), plus either the scheduler role or only the
/// <see cref="ScheduleService"/> (a process that changes schedules without firing them, like the API).
/// </summary>
internal sealed class SchedulerTestHost : IAsyncDisposable
{
    private readonly IHost _host;
    private bool _stopped;

    private SchedulerTestHost(IHost host) => _host = host;

    public ScheduleService Schedules => _host.Services.GetRequiredService<ScheduleService>();

    public RunStore Store => _host.Services.GetRequiredService<RunStore>();

    public static PipelineCatalog Catalog(string yaml)
    {
        var result = new PipelineLoader().Load(System.Text.Encoding.UTF8.GetBytes(yaml), "test.yaml", Path.GetTempPath());
        Assert.True(result.Succeeded, string.Join(Environment.NewLine, result.Diagnostics));
        return new PipelineCatalog(result.Definitions!);
    }

    public static async Task<SchedulerTestHost> StartAsync(
        PipelineCatalog catalog, RunStoreOptions database, bool fires = true,
        Action<SchedulerOptions>? options = null, LogSink? log = null)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Logging.AddFilter(level => level >= LogLevel.Warning).AddSimpleConsole();
        if (log is not null)
        {
            builder.Logging.AddProvider(log).AddFilter<LogSink>(category: null, LogLevel.Information);
        }
        builder.Services.AddSingleton(catalog);
        var pipelines = builder.Services.AddPipelines(new ConfigurationBuilder().Build(), o => o.Database = database);
        var configure = (SchedulerOptions o) =>
        {
            // Generous, so that a fire made late by a loaded CI machine is not taken for a misfire.
            o.MisfireThreshold = TimeSpan.FromSeconds(5);
            options?.Invoke(o);
        };
        if (fires)
        {
            pipelines.AddPipelinesScheduler(configure);
        }
        else
        {
            pipelines.AddPipelinesSchedules(configure);
        }
        var host = builder.Build();
        await host.StartAsync();
        return new SchedulerTestHost(host);
    }

    public Task<List<RunRecord>> RunsAsync(string? schedule = null) =>
        Store.ReadAsync(c => c.Runs.Where(r => schedule == null || r.Schedule == schedule).OrderBy(r => r.FireTime).ToListAsync());

    /// <summary>Polls the runs table until <paramref name="done"/> holds for the runs of <paramref name="schedule"/>.</summary>
    public async Task<List<RunRecord>> WaitForRunsAsync(string schedule, Func<List<RunRecord>, bool> done, TimeSpan timeout)
    {
        var deadline = DateTimeOffset.UtcNow + timeout;
        while (true)
        {
            var runs = await RunsAsync(schedule);
            if (done(runs))
            {
                return runs;
            }
            if (DateTimeOffset.UtcNow > deadline)
            {
                Assert.Fail($"after {timeout}, schedule {schedule} has {runs.Count} runs: {string.Join(", ", runs.Select(r => $"{r.FireTime:HH:mm:ss.fff}/{r.State}"))}");
            }
            await Task.Delay(100);
        }
    }

    public Task SetStateAsync(Guid runId, RunState state) =>
        Store.WriteAsync(c => c.Runs.Where(r => r.Id == runId).ExecuteUpdateAsync(s => s.SetProperty(r => r.State, state)), CancellationToken.None);

    public async Task StopAsync()
    {
        if (!_stopped)
        {
            _stopped = true;
            await _host.StopAsync();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        _host.Dispose();
    }
}

/// <summary>Keeps the scheduler's log events, to check that each misfire decision is logged.</summary>
internal sealed class LogSink : ILoggerProvider
{
    public ConcurrentQueue<(EventId Id, string Message)> Events { get; } = new();

    public ILogger CreateLogger(string categoryName) => new Logger(this);

    public void Dispose()
    {
    }

    private sealed class Logger(LogSink sink) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Information;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (eventId.Id is >= 5000 and < 5100)
            {
                sink.Events.Enqueue((eventId, formatter(state, exception)));
            }
        }
    }
}
