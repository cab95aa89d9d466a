using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Sockets;
using MassTransit;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;
using Pipelines.Bench.Benchmarks.Engine;
using Pipelines.Core.Contracts;
using Pipelines.Core.Coordination;
using Pipelines.Core.Definitions;
using Pipelines.Core.Hosting;
using Pipelines.Core.Persistence;
using Pipelines.Core.Planning;
using Pipelines.Core.Runs;
using Pipelines.Scheduler.Hosting;
using Pipelines.Scheduler.Schedules;

namespace Pipelines.Bench.Benchmarks;

/// <summary>
/// The scheduler on PostgreSQL with 10,000 active schedules (issue 5): while they fire, the lateness of
/// fires (p50/p99 behind the due time of the run accepted, of its start in the coordinator's queue (a
/// <see cref="StartRun"/>, or a <see cref="StartRuns"/> with the runs stored with it), and of that taken
/// off the queue) and the time from an API change to the new
/// trigger firing are measured and written to the progress stream, since the table has no percentiles; the
/// table then times the schedule operations the API calls, with all 10,000 in the store. Needs
/// PostgreSQL (<c>eval "$(bash eng/services.sh up)"</c>); skipped without it. Uses a scratch database.
/// The bus runs in memory, or on RabbitMQ in a scratch virtual host with <c>PIPELINES_BENCH_BUS=rabbitmq</c>.
/// </summary>
internal sealed class SchedulerBenchmarks : IBenchmarkGroup
{
    private const int ActiveSchedules = 10_000;
    private const int ChangeSamples = 20;
    private static readonly TimeSpan LatenessWindow = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan SettleAfterChanges = TimeSpan.FromSeconds(15);
    private const int SteadyWindows = 3;
    private static readonly StartRunSends Sends = new();
    private static readonly StartRunArrivals Arrivals = new();

    private const string Definitions = """
        pipelines:
          report:
            parameters:
              day: { type: string, default: "2026-01-01" }
            steps:
              - name: fetch
                handler: demo.fetch
              - name: build
                handler: demo.build
                depends_on: [fetch]
        """;

    public string Name => "scheduler";

    public IEnumerable<Benchmark> Create()
    {
        var server = Environment.GetEnvironmentVariable("PIPELINES_POSTGRES") ?? "Host=127.0.0.1;Port=5432;Username=pipelines;Database=pipelines";
        if (!Answers(new NpgsqlConnectionStringBuilder(server)))
        {
            Console.Error.WriteLine("scheduler: PostgreSQL is not reachable (PIPELINES_POSTGRES); skipped. Start it with: eval \"$(bash eng/services.sh up)\"");
            yield break;
        }
        BenchServices? rabbitMq = null;
        string? broker = null;
        if (string.Equals(Environment.GetEnvironmentVariable("PIPELINES_BENCH_BUS"), "rabbitmq", StringComparison.OrdinalIgnoreCase))
        {
            var (services, problem) = BenchServices.ConnectAsync(CancellationToken.None).GetAwaiter().GetResult();
            if (services is null)
            {
                Console.Error.WriteLine($"scheduler: PIPELINES_BENCH_BUS=rabbitmq, but:{Environment.NewLine}{problem}");
                yield break;
            }
            rabbitMq = services;
            broker = services.Amqp(services.CreateVirtualHostAsync("scheduler", CancellationToken.None).GetAwaiter().GetResult()).ToString();
        }
        Console.Error.WriteLine($"scheduler: the bus runs {(broker is null ? "in memory" : "on RabbitMQ")}");
        var databaseName = $"pipelines_bench_{Guid.NewGuid():N}";
        Execute(server, $"CREATE DATABASE \"{databaseName}\"");
        var database = new RunStoreOptions
        {
            Provider = RunStoreProvider.PostgreSql,
            ConnectionString = new NpgsqlConnectionStringBuilder(server) { Database = databaseName }.ConnectionString,
        };
        // The stand-in coordinator consumes where a deployed one would: on RabbitMQ on a connection of its
        // own (the API host's bus), not among the firing replica's sends and confirms; in memory only the
        // firing host's bus has the queue.
        var scheduler = Start(database, broker, fires: true, coordinator: broker is null);
        var api = Start(database, broker, fires: false, coordinator: broker is not null);
        try
        {
            var schedules = api.Services.GetRequiredService<ScheduleService>();
            var store = api.Services.GetRequiredService<RunStore>();
            Seed(schedules);
            MeasureLateness(store, everyMinutes: 1);
            MeasureChangeToLive(schedules, store);
            Reschedule(schedules);
            // Schedules not yet changed kept firing every minute while the others were changed; the
            // fires that fell behind then are worked off before the steady rate is measured.
            Thread.Sleep(SettleAfterChanges);
            // One minute's p99 at this rate swings with what else the machine does; three show the spread.
            for (var window = 1; window <= SteadyWindows; window++)
            {
                MeasureLateness(store, everyMinutes: 5, $" (minute {window} of {SteadyWindows})");
            }

            var created = 0;
            yield return new Benchmark("create schedule (API)", $"{ActiveSchedules:N0} active", 20,
                () => schedules.CreateAsync("report", new ScheduleDefinition { Name = $"created-{created++}", Cron = "0 3 * * *" }).GetAwaiter().GetResult(),
                result => Require(((ScheduleDescription)result!).State == ScheduleState.Active, "a created schedule is active"));
            var key = new ScheduleKey("report", "active-0");
            yield return new Benchmark("describe, 5 next fire times", $"{ActiveSchedules:N0} active", 40,
                () => schedules.DescribeAsync(key).GetAwaiter().GetResult(),
                result => Require(((ScheduleDescription)result!).NextFireTimes.Count == 5, "five next fire times"));
            var middle = schedules.ListAsync(pipeline: null, limit: ActiveSchedules / 2).GetAwaiter().GetResult().NextCursor;
            yield return new Benchmark("list a page of 200 (the API's largest)", $"{ActiveSchedules:N0} active, from the middle", 10,
                () => schedules.ListAsync(pipeline: null, limit: 200, middle).GetAwaiter().GetResult(),
                result => Require(((SchedulePage)result!).Schedules.Count == 200, "a full page listed"));
            var launcher = api.Services.GetRequiredService<RunLauncher>();
            yield return new Benchmark("start a scheduled run", "2 steps, run store on PostgreSQL", 40,
                () => launcher.StartAsync(new RunRequest
                {
                    Pipeline = "report",
                    IdempotencyKey = key.IdempotencyKeyFor(DateTimeOffset.UtcNow) + Guid.NewGuid(),
                    Trigger = RunTriggers.Schedule,
                    Schedule = key.ToString(),
                    FireTime = DateTimeOffset.UtcNow,
                }, CancellationToken.None).GetAwaiter().GetResult(),
                result => Require(((LaunchedRun)result!).Created, "a run is created"));
        }
        finally
        {
            api.StopAsync().GetAwaiter().GetResult();
            scheduler.StopAsync().GetAwaiter().GetResult();
            api.Dispose();
            scheduler.Dispose();
            NpgsqlConnection.ClearAllPools();
            Execute(server, $"DROP DATABASE IF EXISTS \"{databaseName}\" WITH (FORCE)");
            rabbitMq?.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }
    }

    /// <summary>Schedules firing once a minute, spread evenly over the seconds: about 167 fires a second.</summary>
    private static void Seed(ScheduleService schedules)
    {
        var started = Stopwatch.GetTimestamp();
        Parallel.For(0, ActiveSchedules, new ParallelOptions { MaxDegreeOfParallelism = 8 }, i =>
            schedules.CreateAsync("report", new ScheduleDefinition { Name = $"active-{i}", Cron = $"{i % 60} * * * * ?" }).GetAwaiter().GetResult());
        Console.Error.WriteLine($"scheduler: created {ActiveSchedules:N0} schedules in {BenchmarkRunner.Time(Stopwatch.GetElapsedTime(started))}");
    }

    /// <summary>
    /// The same schedules, each once every 5 minutes instead, spread evenly over the seconds of those 5
    /// minutes: about 33 fires a second, from the same 10,000 triggers in the store.
    /// </summary>
    private static void Reschedule(ScheduleService schedules)
    {
        var started = Stopwatch.GetTimestamp();
        Parallel.For(0, ActiveSchedules, new ParallelOptions { MaxDegreeOfParallelism = 8 }, i =>
            schedules.UpdateAsync(new ScheduleKey("report", $"active-{i}"), new ScheduleDefinition { Name = $"active-{i}", Cron = $"{i % 60} {i / 60 % 5}/5 * * * ?" })
                .GetAwaiter().GetResult());
        Console.Error.WriteLine($"scheduler: changed {ActiveSchedules:N0} schedules to every 5 minutes in {BenchmarkRunner.Time(Stopwatch.GetElapsedTime(started))}");
    }

    private static void MeasureLateness(RunStore store, int everyMinutes, string window = "")
    {
        var from = DateTimeOffset.UtcNow;
        Thread.Sleep(LatenessWindow);
        var to = DateTimeOffset.UtcNow;
        var fires = store.ReadAsync(c => c.Runs
                .Where(r => r.Trigger == RunTriggers.Schedule && r.FireTime >= from && r.FireTime < to)
                .Select(r => new { r.Id, r.CreatedAt, FireTime = r.FireTime!.Value })
                .ToListAsync())
            .GetAwaiter().GetResult();
        var stages = fires.Select(r => new
        {
            r.FireTime,
            Accepted = r.CreatedAt - r.FireTime,
            Handed = Noted(Sends.Handed, r.Id) - r.FireTime,
            Queued = Noted(Sends.Sent, r.Id) - r.FireTime,
            Taken = Noted(Arrivals.Arrived, r.Id) - r.FireTime,
        }).ToList();
        var lateness = stages.Select(r => r.Accepted).Order().ToList();
        var handed = stages.Select(r => r.Handed).Order().ToList();
        var queued = stages.Select(r => r.Queued).Order().ToList();
        var taken = stages.Select(r => r.Taken).Order().ToList();
        // Where the second whose burst reached the queue last (on its median: a schedule created late fires
        // alone in the next round) lost its time: before the runs were stored, storing them (accepted to
        // handed over), or the send itself (handed over to in the queue).
        var bursts = stages.GroupBy(r => r.FireTime).ToList();
        var slowest = bursts.MaxBy(burst => burst.Select(r => r.Queued).Order().ElementAt(burst.Count() / 2))!;
        // A late p99 is a few late seconds or every second a little late: the count tells which.
        var lateBursts = bursts.Count(burst => burst.Max(r => r.Accepted) > TimeSpan.FromMilliseconds(100));
        Require(lateness.Count > 0, "schedules fired during the window");
        var expected = (int)(LatenessWindow.TotalSeconds * ActiveSchedules / (60 * everyMinutes));
        var schedulesFire = everyMinutes == 1 ? "each every minute" : $"each every {everyMinutes} minutes";
        Console.Error.WriteLine(
            $"scheduler: fire lateness at {ActiveSchedules:N0} schedules, {schedulesFire}, over {LatenessWindow.TotalSeconds:0} s{window}: {lateness.Count:N0} fires (about {expected:N0} due), " +
            $"accepted p50 {BenchmarkRunner.Time(Percentile(lateness, 0.50))}, p99 {BenchmarkRunner.Time(Percentile(lateness, 0.99))}, max {BenchmarkRunner.Time(lateness[^1])}; " +
            $"{lateBursts} of {bursts.Count} due seconds had a fire accepted over 100 ms late; " +
            $"start handed to the bus p50 {BenchmarkRunner.Time(Percentile(handed, 0.50))}, p99 {BenchmarkRunner.Time(Percentile(handed, 0.99))}; " +
            $"in the coordinator's queue p50 {BenchmarkRunner.Time(Percentile(queued, 0.50))}, p99 {BenchmarkRunner.Time(Percentile(queued, 0.99))}, max {BenchmarkRunner.Time(queued[^1])}; " +
            $"taken off it by a stand-in coordinator p50 {BenchmarkRunner.Time(Percentile(taken, 0.50))}, p99 {BenchmarkRunner.Time(Percentile(taken, 0.99))}; " +
            $"slowest second {slowest.Key:HH:mm:ss} UTC ({slowest.Count()} fires): accepted by {BenchmarkRunner.Time(slowest.Max(r => r.Accepted))}, " +
            $"handed over by {BenchmarkRunner.Time(slowest.Max(r => r.Handed))}, in the queue by {BenchmarkRunner.Time(slowest.Max(r => r.Queued))}, " +
            $"taken by {BenchmarkRunner.Time(slowest.Max(r => r.Taken))}");
    }

    /// <summary>
    /// Another process creates a schedule due at the next whole second; live is when the running
    /// scheduler fires it. The figure is how late that fire is behind the later of its due time and
    /// the end of the API call (0 when the scheduler saw it in time).
    /// </summary>
    private static void MeasureChangeToLive(ScheduleService schedules, RunStore store)
    {
        var delays = new List<TimeSpan>();
        for (var i = 0; i < ChangeSamples; i++)
        {
            var name = $"changed-{i}";
            var created = schedules.CreateAsync("report", new ScheduleDefinition { Name = name, Cron = "* * * * * ?", EndAt = DateTimeOffset.UtcNow.AddSeconds(3) })
                .GetAwaiter().GetResult();
            var applied = DateTimeOffset.UtcNow;
            var due = created.NextFireTimes[0];
            var schedule = $"report/{name}";
            RunRecord? first = null;
            var deadline = Stopwatch.GetTimestamp();
            while (first is null && Stopwatch.GetElapsedTime(deadline) < TimeSpan.FromSeconds(10))
            {
                Thread.Sleep(10);
                first = store.ReadAsync(c => c.Runs.Where(r => r.Schedule == schedule).OrderBy(r => r.FireTime).FirstOrDefaultAsync()).GetAwaiter().GetResult();
            }
            Require(first is not null, $"schedule {schedule} fired within 10 s");
            var live = first!.CreatedAt - (due > applied ? due : applied);
            delays.Add(live < TimeSpan.Zero ? TimeSpan.Zero : live);
            Thread.Sleep(Random.Shared.Next(0, 1000));
        }
        delays.Sort();
        Console.Error.WriteLine(
            $"scheduler: API change to live over {ChangeSamples} creates: p50 {BenchmarkRunner.Time(Percentile(delays, 0.50))}, max {BenchmarkRunner.Time(delays[^1])}");
    }

    /// <summary>When <paramref name="run"/>'s stage was noted; never, for a percentile, if it was not.</summary>
    private static DateTimeOffset Noted(ConcurrentDictionary<Guid, DateTimeOffset> stage, Guid run) =>
        stage.TryGetValue(run, out var at) ? at : DateTimeOffset.MaxValue;

    /// <summary>
    /// Notes when each run's start is handed to the bus (its run stored) and when it is in
    /// the coordinator's queue: its send is done (the broker confirmed it, or the in-memory queue holds it).
    /// </summary>
    private sealed class StartRunSends : ISendObserver
    {
        public ConcurrentDictionary<Guid, DateTimeOffset> Handed { get; } = new();

        public ConcurrentDictionary<Guid, DateTimeOffset> Sent { get; } = new();

        public Task PreSend<T>(SendContext<T> context) where T : class
        {
            Note(Handed, context.Message);
            return Task.CompletedTask;
        }

        public Task PostSend<T>(SendContext<T> context) where T : class
        {
            Note(Sent, context.Message);
            return Task.CompletedTask;
        }

        public Task SendFault<T>(SendContext<T> context, Exception exception) where T : class => Task.CompletedTask;
    }

    /// <summary>Notes the time for every run a start message (<see cref="StartRun"/> or <see cref="StartRuns"/>) carries.</summary>
    private static void Note(ConcurrentDictionary<Guid, DateTimeOffset> stage, object message)
    {
        var now = DateTimeOffset.UtcNow;
        switch (message)
        {
            case StartRun start:
                stage.TryAdd(start.RunId, now);
                break;
            case StartRuns starts:
                foreach (var run in starts.Runs)
                {
                    stage.TryAdd(run.RunId, now);
                }
                break;
        }
    }

    /// <summary>
    /// Stands in for the coordinator and notes when each run's start is taken off its queue: a
    /// coordinator on the same two cores would begin the run then at the earliest.
    /// </summary>
    private sealed class StartRunArrivals : IPipelinesEndpoints
    {
        public ConcurrentDictionary<Guid, DateTimeOffset> Arrived { get; } = new();

        public void Configure(IBusRegistrationContext context, IReceiveConfigurator configurator) =>
            configurator.ReceiveEndpoint(StepQueues.Coordinator, endpoint =>
            {
                endpoint.Handler<StartRun>(message =>
                {
                    Note(Arrived, message.Message);
                    return Task.CompletedTask;
                });
                endpoint.Handler<StartRuns>(message =>
                {
                    Note(Arrived, message.Message);
                    return Task.CompletedTask;
                });
            });
    }

    private static IHost Start(RunStoreOptions database, string? broker, bool fires, bool coordinator)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Logging.AddFilter(level => level >= LogLevel.Warning).AddSimpleConsole(console => console.SingleLine = true);
        var result = new PipelineLoader(new PipelineLoaderOptions { Variables = new Dictionary<string, string>() })
            .Load(System.Text.Encoding.UTF8.GetBytes(Definitions), "scheduler-bench.yaml", ".");
        builder.Services.AddSingleton(new PipelineCatalog(result.Definitions!));
        var pipelines = builder.Services.AddPipelines(new ConfigurationBuilder().Build(), options =>
        {
            options.Database = database;
            if (broker is not null)
            {
                options.Transport = TransportKind.RabbitMq;
                options.RabbitMq = broker;
            }
        });
        _ = fires ? pipelines.AddPipelinesScheduler() : pipelines.AddPipelinesSchedules();
        if (coordinator)
        {
            builder.Services.AddSingleton<IPipelinesEndpoints>(Arrivals);
        }
        var host = builder.Build();
        host.StartAsync().GetAwaiter().GetResult();
        if (fires)
        {
            host.Services.GetRequiredService<IBus>().ConnectSendObserver(Sends);
        }
        return host;
    }

    private static TimeSpan Percentile(List<TimeSpan> sorted, double fraction) =>
        sorted[Math.Min(sorted.Count - 1, (int)Math.Ceiling(fraction * sorted.Count) - 1)];

    private static void Require(bool condition, string what)
    {
        if (!condition)
        {
            throw new InvalidOperationException($"scheduler benchmark: expected {what}");
        }
    }

    private static void Execute(string connectionString, string sql)
    {
        using var connection = new NpgsqlConnection(connectionString);
        connection.Open();
        using var command = new NpgsqlCommand(sql, connection);
        command.ExecuteNonQuery();
    }

    private static bool Answers(NpgsqlConnectionStringBuilder server)
    {
        try
        {
            using var client = new TcpClient();
            return client.ConnectAsync(server.Host ?? "127.0.0.1", server.Port).Wait(TimeSpan.FromSeconds(1)) && client.Connected;
        }
        catch (Exception exception) when (exception is AggregateException or SocketException)
        {
            return false;
        }
    }
}
