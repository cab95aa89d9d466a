using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata;
using Pipelines.Core.Persistence;
using Pipelines.Core.Runs;
using Pipelines.Tests;

namespace Pipelines.Engine.Tests;

/// <summary>
/// New runs reach PostgreSQL by binary COPY rather than through EF Core (<see cref="RunStore.InsertAsync{T}"/>):
/// what is read back must be what was stored, column for column.
/// </summary>
public sealed class RunStoreCopyTests : IAsyncLifetime, IDisposable
{
    // PostgreSQL keeps microseconds; UTC because timestamptz is read back in UTC.
    private static readonly DateTimeOffset Time = new(2026, 3, 29, 1, 59, 59, 123, 456, TimeSpan.Zero);

    private ScratchPostgres? _database;
    private RunStore? _store;

    public async Task InitializeAsync()
    {
        _database = await ScratchPostgres.CreateAsync("copy_tests");
        _store = new RunStore(new RunStoreOptions { Provider = RunStoreProvider.PostgreSql, ConnectionString = _database.ConnectionString });
        await _store.MigrateAsync(CancellationToken.None);
    }

    public async Task DisposeAsync()
    {
        if (_database is not null)
        {
            await _database.DisposeAsync();
        }
    }

    public void Dispose() => _store?.Dispose();

    [ServiceFact]
    public async Task A_run_with_every_column_filled_reads_back_as_it_was_stored()
    {
        var run = FilledRun();
        var step = FilledStep(run.Id);
        var chain = FilledChain(run.Id);
        Assert.All(Unfilled(run).Concat(Unfilled(step)).Concat(Unfilled(chain)), column => Assert.Fail($"fill {column} in this test, so that its copy is checked"));

        await InsertAsync(run, step, chain);

        await AssertStoredAsync(run, step, chain);
    }

    [ServiceFact]
    public async Task A_run_with_every_optional_column_empty_reads_back_empty()
    {
        var run = new RunRecord { Id = Guid.NewGuid(), Pipeline = "nightly", DefinitionHash = "ab", State = RunState.Pending, CreatedAt = Time, RemainingChains = 1 };
        var step = new StepRecord { RunId = run.Id, Name = "build", State = StepState.Pending };
        var chain = new ChainRecord { RunId = run.Id, Index = 0, State = ChainState.Waiting };

        await InsertAsync(run, step, chain);

        await AssertStoredAsync(run, step, chain);
    }

    [ServiceFact]
    public async Task A_new_run_without_an_id_is_refused_rather_than_stored_under_the_empty_id()
    {
        var run = FilledRun();
        run.Id = Guid.Empty;

        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => _store!.WriteAsync(context => _store.InsertAsync(context, [run], CancellationToken.None), CancellationToken.None));

        Assert.Contains("RunRecord.Id is not set", error.Message, StringComparison.Ordinal);
        Assert.Equal(0, await _store!.ReadAsync(context => context.Runs.CountAsync()));
    }

    [ServiceFact]
    public async Task Steps_and_chains_copied_after_the_runs_table_grew_find_their_run_by_its_key()
    {
        // One connection, so the foreign-key checks planned with the first run are the ones used later.
        using var store = new RunStore(new RunStoreOptions
        {
            Provider = RunStoreProvider.PostgreSql,
            ConnectionString = $"{_database!.ConnectionString};Maximum Pool Size=1",
        });
        // What autovacuum does to a new database's tables as its first runs arrive: statistics of a page or two.
        await InsertRunsAsync(store, 1);
        await store.WriteAsync(context => context.Database.ExecuteSqlRawAsync("ANALYZE runs"), CancellationToken.None);
        for (var batch = 0; batch < 4; batch++)
        {
            await InsertRunsAsync(store, 500);
        }

        var (sequentialScans, keyLookups) = await InsertRunsAsync(store, 100);

        Assert.True(sequentialScans == 0, $"the foreign-key checks of 100 runs' steps and chains scanned the runs table sequentially {sequentialScans} times");
        Assert.True(keyLookups >= 200, $"expected a key lookup in runs per step and chain copied, saw {keyLookups}");
    }

    /// <summary>Copies <paramref name="count"/> runs with a step and a chain each; the scans of <c>runs</c> that took.</summary>
    private static Task<(long SequentialScans, long KeyLookups)> InsertRunsAsync(RunStore store, int count)
    {
        var runs = Enumerable.Range(0, count)
            .Select(_ => new RunRecord { Id = Guid.NewGuid(), Pipeline = "nightly", DefinitionHash = "ab", State = RunState.Pending, CreatedAt = Time, RemainingChains = 1 })
            .ToList();
        return store.WriteAsync(async context =>
        {
            await store.InsertAsync(context, runs, CancellationToken.None);
            await store.InsertAsync(context, runs.ConvertAll(run => new StepRecord { RunId = run.Id, Name = "build", State = StepState.Pending }), CancellationToken.None);
            await store.InsertAsync(context, runs.ConvertAll(run => new ChainRecord { RunId = run.Id, Index = 0, State = ChainState.Waiting }), CancellationToken.None);
            var scans = await context.Database
                .SqlQueryRaw<TableScans>("SELECT seq_scan AS \"SequentialScans\", idx_scan AS \"KeyLookups\" FROM pg_stat_xact_user_tables WHERE relname = 'runs'")
                .SingleAsync();
            return (scans.SequentialScans, scans.KeyLookups);
        }, CancellationToken.None);
    }

    private sealed record TableScans(long SequentialScans, long KeyLookups);

    private Task InsertAsync(RunRecord run, StepRecord step, ChainRecord chain) =>
        _store!.WriteAsync(async context =>
        {
            await _store.InsertAsync(context, [run], CancellationToken.None);
            await _store.InsertAsync(context, [step], CancellationToken.None);
            await _store.InsertAsync(context, [chain], CancellationToken.None);
        }, CancellationToken.None);

    private async Task AssertStoredAsync(RunRecord run, StepRecord step, ChainRecord chain)
    {
        var (storedRun, storedStep, storedChain) = await _store!.ReadAsync(async context => (
            await context.Runs.SingleAsync(r => r.Id == run.Id),
            await context.Steps.SingleAsync(s => s.RunId == run.Id),
            await context.Chains.SingleAsync(c => c.RunId == run.Id)));
        AssertSameColumns(run, storedRun);
        AssertSameColumns(step, storedStep);
        AssertSameColumns(chain, storedChain);
    }

    private void AssertSameColumns<T>(T expected, T actual) where T : class
    {
        foreach (var property in Columns<T>())
        {
            var getter = property.GetGetter();
            var (stored, readBack) = (getter.GetClrValueUsingContainingEntity(expected), getter.GetClrValueUsingContainingEntity(actual));
            Assert.True(Equals(stored, readBack), $"{typeof(T).Name}.{property.Name}: stored {Show(stored)}, read back {Show(readBack)}");
        }
    }

    private static string Show(object? value) => value switch
    {
        null => "null",
        DateTimeOffset time => time.ToString("O", System.Globalization.CultureInfo.InvariantCulture),
        _ => value.ToString()!,
    };

    private IEnumerable<string> Unfilled<T>(T row) where T : class =>
        Columns<T>()
            .Where(property => property.GetGetter().GetClrValueUsingContainingEntity(row) is not { } value
                || (property.ClrType.IsValueType && !property.ClrType.IsEnum && value.Equals(Activator.CreateInstance(property.ClrType))))
            .Select(property => $"{typeof(T).Name}.{property.Name}");

    private List<IProperty> Columns<T>()
    {
        using var context = _store!.CreateContext();
        return context.Model.FindEntityType(typeof(T))!.GetProperties().ToList();
    }

    private static RunRecord FilledRun() => new()
    {
        Id = Guid.NewGuid(),
        Pipeline = "nightly-report",
        DefinitionHash = new string('f', 64),
        Input = """{"day":"2026-03-29","note":"ünïcödé \"quoted\""}""",
        State = RunState.Running,
        CreatedAt = Time,
        StartCheckAt = Time.AddSeconds(30),
        StartedAt = Time.AddMilliseconds(1.5),
        FinishedAt = Time.AddMinutes(1),
        IdempotencyKey = "schedule:nightly-report:2026-03-29T01:59:59Z",
        Trigger = RunTriggers.Schedule,
        Schedule = "nightly-report",
        FireTime = Time.AddTicks(-10),
        RetryOf = Guid.NewGuid(),
        FailedStep = "publish",
        TraceParent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        Error = "line one\nline two",
        CompensationQuietSince = Time.AddSeconds(2),
        CompensationCheckAt = Time.AddSeconds(3),
        RemainingChains = 3,
        Version = 7,
    };

    private static StepRecord FilledStep(Guid runId) => new()
    {
        RunId = runId,
        Name = "publish",
        Chain = 2,
        Position = 4,
        State = StepState.Failed,
        Attempts = 3,
        StartedAt = Time.AddSeconds(4),
        FinishedAt = Time.AddSeconds(5),
        Output = """{"rows":42}""",
        ErrorKind = "timeout",
        ErrorType = "System.TimeoutException",
        ErrorMessage = "took longer than 30 s",
        ErrorStack = "at Publish()\n at Run()",
        LeaseOwner = "worker-7",
        LeaseExpiresAt = Time.AddSeconds(6),
        CompensationEndedAt = Time.AddSeconds(7),
        Detached = true,
        Reused = true,
    };

    private static ChainRecord FilledChain(Guid runId) => new()
    {
        RunId = runId,
        Index = 2,
        RemainingParents = 1,
        State = ChainState.Dispatched,
        QuietSince = Time.AddSeconds(8),
        StallCheckAt = Time.AddSeconds(9),
    };
}
