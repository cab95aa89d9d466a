using System.Collections.Concurrent;
using Hangfire;
using Hangfire.PostgreSql;
using Hangfire.PostgreSql.Factories;
using Hangfire.States;
using Hangfire.Storage;

namespace Pipelines.Bench.Benchmarks.Engine;

/// <summary>
/// The nearest .NET peer: Hangfire 1.8 on Hangfire.PostgreSql, client and server in this process.
/// One run is an empty job, or a chain of empty jobs each a continuation of the one before
/// (<c>ContinueJobWith</c>), from <c>Enqueue</c> until the last job's Succeeded state is applied.
/// The storage's defaults, except a queue poll of 1 s instead of 15 s (jobs enqueued in this
/// process wake a worker at once; the poll bounds the wait of the ones that miss the wake-up), and
/// the server runs the engine worker's concurrency. <c>EnableLongPolling</c> is off: measured here, it
/// gave no more throughput and cost about 40% more commits per job (a LISTEN connection per dequeue).
/// </summary>
internal sealed class HangfireTarget(BenchServices services, int jobs, int workerCount) : BenchTarget
{
    private readonly Completions<(DateTimeOffset FirstStarted, DateTimeOffset Finished)> _done = new();
    private PostgreSqlStorage? _storage;
    private BackgroundJobServer? _server;
    private BackgroundJobClient? _client;
    private SucceededFilter? _filter;

    public override string Key => jobs == 1 ? "hangfire" : "hangfire-chain";

    public override string Name => jobs == 1 ? "Hangfire.PostgreSql empty job" : $"Hangfire.PostgreSql {jobs}-job continuation chain";

    public override int StepsPerRun => jobs;

    public override async Task PrepareAsync(CancellationToken cancellationToken)
    {
        Database = await services.CreateDatabaseAsync(jobs == 1 ? "hangfire" : "hangfire_chain", cancellationToken);
        var options = new PostgreSqlStorageOptions { QueuePollInterval = TimeSpan.FromSeconds(1), PrepareSchemaIfNecessary = true };
        // Installs Hangfire's schema, before the baseline of the database's counters.
        _storage = new PostgreSqlStorage(new NpgsqlConnectionFactory(services.ConnectionString(Database, "hangfire"), options, null), options);
    }

    public override Task StartAsync(CancellationToken cancellationToken)
    {
        _filter = new SucceededFilter(_done, jobs - 1);
        GlobalJobFilters.Filters.Add(_filter);
        _server = new BackgroundJobServer(new BackgroundJobServerOptions { WorkerCount = workerCount, ServerName = "pipelines-bench" }, _storage);
        _client = new BackgroundJobClient(_storage);
        return Task.CompletedTask;
    }

    protected override async Task<RunSample> RunAsync(CancellationToken cancellationToken)
    {
        var id = Guid.NewGuid();
        var issued = DateTimeOffset.UtcNow;
        var job = _client!.Enqueue(() => HangfireJobs.Step(id, 0));
        for (var position = 1; position < jobs; position++)
        {
            var next = position;
            job = _client.ContinueJobWith(job, () => HangfireJobs.Step(id, next));
        }
        var (firstStarted, finished) = await _done.WaitAsync(id, cancellationToken);
        return new RunSample(id, issued, firstStarted, finished);
    }

    public override Task StopAsync(CancellationToken cancellationToken)
    {
        if (_server is not null)
        {
            _server.SendStop();
            _server.Dispose();
            _server = null;
        }
        if (_filter is not null)
        {
            GlobalJobFilters.Filters.Remove(_filter);
            _filter = null;
        }
        return Task.CompletedTask;
    }

    public override ValueTask DisposeAsync() => new(StopAsync(CancellationToken.None));

    /// <summary>Signals a run done when its last job's Succeeded state is applied (inside Hangfire's transaction, before it commits).</summary>
    private sealed class SucceededFilter(Completions<(DateTimeOffset, DateTimeOffset)> done, int lastPosition) : IApplyStateFilter
    {
        public void OnStateApplied(ApplyStateContext context, IWriteOnlyTransaction transaction)
        {
            if (context.NewState is SucceededState && context.BackgroundJob.Job.Args is [Guid run, int position] && position == lastPosition)
            {
                done.Complete(run, (HangfireJobs.TakeFirstStart(run), DateTimeOffset.UtcNow));
            }
        }

        public void OnStateUnapplied(ApplyStateContext context, IWriteOnlyTransaction transaction)
        {
        }
    }
}

/// <summary>The jobs Hangfire runs: empty, except that the first of a run notes when it started.</summary>
internal static class HangfireJobs
{
    private static readonly ConcurrentDictionary<Guid, DateTimeOffset> FirstStarts = new();

    public static void Step(Guid run, int position)
    {
        if (position == 0)
        {
            FirstStarts[run] = DateTimeOffset.UtcNow;
        }
    }

    public static DateTimeOffset TakeFirstStart(Guid run) => FirstStarts.TryRemove(run, out var started) ? started : DateTimeOffset.MinValue;
}
