using Npgsql;

namespace Pipelines.Core.Persistence;

public enum RunStoreProvider
{
    /// <summary>A file on the local disk: the embedded default, one process.</summary>
    Sqlite,
    PostgreSql,
}

/// <summary>Configuration section <c>Pipelines:Database</c>.</summary>
public sealed class RunStoreOptions
{
    public RunStoreProvider Provider { get; set; } = RunStoreProvider.Sqlite;

    /// <summary>Npgsql connection string, or a SQLite one; empty selects <c>data/pipelines.db</c>.</summary>
    public string ConnectionString { get; set; } = "";

    /// <summary>Apply pending migrations at start-up.</summary>
    public bool Migrate { get; set; } = true;

    /// <summary>Log lines kept per step attempt; the rest are counted and the cap is stated in the log.</summary>
    public int MaxLogLinesPerAttempt { get; set; } = 10_000;

    /// <summary>
    /// The connection string the run store and the scheduler's job store open. On PostgreSQL, unless the
    /// string sets them:
    /// <list type="bullet">
    /// <item>Npgsql prepares the statements a connection runs again and again (<c>Max Auto Prepare=64</c>):
    /// the same few inserts and updates run for every step and every fire, and parsing and planning each
    /// anew was a third of PostgreSQL's CPU under the scheduler benchmark. Set <c>Max Auto Prepare=0</c>
    /// behind a pooler that cannot keep prepared statements.</item>
    /// <item>A pool keeps the connections it opened (<c>Minimum Pool Size</c> = <c>Maximum Pool Size</c>).
    /// Every <c>Connection Idle Lifetime</c> (300 s) Npgsql closes as many connections as were idle in half
    /// of its samples, taken every 10 s; under load that comes in bursts (a scheduler's fires each second)
    /// that is nearly all of them at once, and the burst after was opening them again: one second's fires
    /// came 150-600 ms late, 300 s after start, in every benchmark run on RabbitMQ (bench/README.md). An
    /// idle connection costs PostgreSQL one idle backend; <c>Maximum Pool Size</c> still bounds them.</item>
    /// </list>
    /// </summary>
    public string EffectiveConnectionString => Provider switch
    {
        RunStoreProvider.PostgreSql when ConnectionString.Length > 0 => WithPostgresDefaults(ConnectionString),
        RunStoreProvider.PostgreSql => ConnectionString,
        _ when ConnectionString.Length > 0 => ConnectionString,
        _ => $"Data Source={Path.Combine("data", "pipelines.db")}",
    };

    private const int AutoPreparedStatements = 64;

    private static string WithPostgresDefaults(string connectionString)
    {
        var builder = new NpgsqlConnectionStringBuilder(connectionString);
        // The builder names only the settings the string has, so this tells an explicit 0 from none.
        var given = builder.ConnectionString;
        if (!given.Contains("Max Auto Prepare=", StringComparison.OrdinalIgnoreCase))
        {
            builder.MaxAutoPrepare = AutoPreparedStatements;
        }
        if (!given.Contains("Minimum Pool Size=", StringComparison.OrdinalIgnoreCase))
        {
            builder.MinPoolSize = builder.MaxPoolSize;
        }
        return builder.ConnectionString;
    }
}
