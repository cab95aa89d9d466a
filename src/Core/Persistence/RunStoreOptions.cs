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

    public string EffectiveConnectionString => ConnectionString.Length > 0 || Provider != RunStoreProvider.Sqlite
        ? ConnectionString
        : $"Data Source={Path.Combine("data", "pipelines.db")}";
}
