using System.Data.Common;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Storage;
using Npgsql;

namespace Pipelines.Core.Persistence;

/// <summary>
/// Opens run-store contexts for the configured provider and runs units of work in transactions,
/// retrying the ones PostgreSQL aborts for deadlock or serialization (two workers touching the
/// same join). SQLite allows one writer at a time, so in the embedded default write transactions
/// are serialized in-process instead of failing with "database is locked".
/// </summary>
public sealed class RunStore : IDisposable
{
    private readonly DbContextOptions _options;
    private readonly SemaphoreSlim? _sqliteWriter;

    public RunStore(RunStoreOptions options, TimeProvider? clock = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        Options = options;
        Clock = clock ?? TimeProvider.System;
        if (options.Provider == RunStoreProvider.PostgreSql)
        {
            _options = new DbContextOptionsBuilder<PostgresRunStoreContext>()
                .UseNpgsql(options.EffectiveConnectionString, npgsql => npgsql.MigrationsHistoryTable("__pipelines_migrations"))
                .Options;
        }
        else
        {
            var connection = options.EffectiveConnectionString;
            var file = new Microsoft.Data.Sqlite.SqliteConnectionStringBuilder(connection).DataSource;
            if (!string.IsNullOrEmpty(Path.GetDirectoryName(file)))
            {
                Directory.CreateDirectory(Path.GetDirectoryName(file)!);
            }
            _options = new DbContextOptionsBuilder<SqliteRunStoreContext>()
                .UseSqlite(connection, sqlite => sqlite.MigrationsHistoryTable("__pipelines_migrations"))
                .Options;
            _sqliteWriter = new SemaphoreSlim(1, 1);
        }
    }

    public RunStoreOptions Options { get; }

    public TimeProvider Clock { get; }

    public DateTimeOffset Now => Clock.GetUtcNow();

    public RunStoreContext CreateContext() => _options switch
    {
        DbContextOptions<PostgresRunStoreContext> postgres => new PostgresRunStoreContext(postgres),
        DbContextOptions<SqliteRunStoreContext> sqlite => new SqliteRunStoreContext(sqlite),
        _ => throw new InvalidOperationException("unknown run store provider"),
    };

    /// <summary>
    /// Brings the schema up to date. A database that is still starting (processes of a deployment
    /// often start together) is waited for, as <see cref="WriteAsync{T}"/> waits out an outage.
    /// </summary>
    public async Task MigrateAsync(CancellationToken cancellationToken)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await using var context = CreateContext();
                await context.Database.MigrateAsync(cancellationToken);
                if (_sqliteWriter is not null)
                {
                    // WAL lets readers (the API, the CLI's live display) proceed while a step writes.
                    await context.Database.ExecuteSqlRawAsync("PRAGMA journal_mode=WAL;", cancellationToken);
                }
                return;
            }
            catch (Exception exception) when (RetryDelay(exception, attempt) is { } delay)
            {
                await Task.Delay(delay, cancellationToken);
            }
        }
    }

    /// <summary>Reads without a transaction.</summary>
    public async Task<T> ReadAsync<T>(Func<RunStoreContext, Task<T>> read)
    {
        ArgumentNullException.ThrowIfNull(read);
        await using var context = CreateContext();
        context.ChangeTracker.QueryTrackingBehavior = QueryTrackingBehavior.NoTracking;
        return await read(context);
    }

    /// <summary>Runs <paramref name="work"/> in one transaction, retrying it whole on a transient conflict.</summary>
    public async Task<T> WriteAsync<T>(Func<RunStoreContext, Task<T>> work, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(work);
        for (var attempt = 1; ; attempt++)
        {
            if (_sqliteWriter is not null)
            {
                await _sqliteWriter.WaitAsync(cancellationToken);
            }
            try
            {
                await using var context = CreateContext();
                // A failed unit is retried whole, in a new transaction: no savepoint (two round trips) per save.
                context.Database.AutoSavepointsEnabled = false;
                await using IDbContextTransaction transaction = await context.Database.BeginTransactionAsync(cancellationToken);
                var result = await work(context);
                await context.SaveChangesAsync(cancellationToken);
                await transaction.CommitAsync(cancellationToken);
                return result;
            }
            catch (Exception exception) when (RetryDelay(exception, attempt) is { } delay)
            {
                await Task.Delay(delay, cancellationToken);
            }
            finally
            {
                _sqliteWriter?.Release();
            }
        }
    }

    public Task WriteAsync(Func<RunStoreContext, Task> work, CancellationToken cancellationToken) =>
        WriteAsync(async context =>
        {
            await work(context);
            return true;
        }, cancellationToken);

    /// <summary>
    /// Inserts new rows within <paramref name="context"/>'s unit of work: on PostgreSQL copied in at once
    /// (<see cref="PostgresCopy"/>), on SQLite saved with the unit. Rows a later insert refers to go first.
    /// </summary>
    public async Task InsertAsync<T>(RunStoreContext context, IReadOnlyCollection<T> rows, CancellationToken cancellationToken) where T : class
    {
        ArgumentNullException.ThrowIfNull(context);
        if (Options.Provider == RunStoreProvider.PostgreSql)
        {
            await PostgresCopy.InsertAsync(context, rows, cancellationToken);
        }
        else
        {
            context.Set<T>().AddRange(rows);
        }
    }

    /// <summary>
    /// How long to wait before running a failed unit of work again: briefly after a deadlock or
    /// serialization conflict (a few times), a second at a time for up to half a minute while the
    /// database restarts or fails over; null when retrying cannot help. Units are conditional
    /// updates, so running one again after a commit whose outcome was lost changes nothing twice.
    /// </summary>
    private static TimeSpan? RetryDelay(Exception exception, int attempt) =>
        IsTransientConflict(exception) ? (attempt < 5 ? TimeSpan.FromMilliseconds(Random.Shared.Next(5, 20 * attempt)) : null)
        : IsTransient(exception) && attempt < 30 ? TimeSpan.FromSeconds(1)
        : null;

    private static bool IsTransientConflict(Exception exception) => exception switch
    {
        PostgresException postgres => postgres.SqlState is PostgresErrorCodes.DeadlockDetected or PostgresErrorCodes.SerializationFailure,
        DbUpdateException { InnerException: { } inner } => IsTransientConflict(inner),
        InvalidOperationException { InnerException: { } inner } => IsTransientConflict(inner),
        _ => false,
    };

    /// <summary>True for errors that go away by themselves: a restarting, failing-over or overloaded database.</summary>
    internal static bool IsTransient(Exception exception) => exception switch
    {
        NpgsqlException npgsql => npgsql.IsTransient,
        Microsoft.Data.Sqlite.SqliteException sqlite => sqlite.SqliteErrorCode is 5 or 6, // busy, locked
        DbUpdateException { InnerException: { } inner } => IsTransient(inner),
        InvalidOperationException { InnerException: { } inner } => IsTransient(inner),
        _ => false,
    };

    /// <summary>True when an insert failed on a unique index (a run id or idempotency key seen before).</summary>
    public static bool IsUniqueViolation(Exception exception) => exception switch
    {
        PostgresException postgres => postgres.SqlState == PostgresErrorCodes.UniqueViolation,
        Microsoft.Data.Sqlite.SqliteException sqlite => sqlite.SqliteErrorCode == 19,
        DbException { InnerException: { } inner } => IsUniqueViolation(inner),
        DbUpdateException { InnerException: { } inner } => IsUniqueViolation(inner),
        _ => false,
    };

    public void Dispose() => _sqliteWriter?.Dispose();
}
