using System.Diagnostics;
using System.Globalization;
using Npgsql;

namespace Pipelines.Faults.Services;

/// <summary>
/// A PostgreSQL 15 cluster of the harness's own (initdb in a temporary folder, its own port and
/// socket folder), so that restarting it with <c>-m immediate</c> never touches the shared one
/// that other suites use. Runs as the <c>postgres</c> user, as eng/services.sh runs the shared one.
/// </summary>
internal sealed class PostgresNode : IAsyncDisposable
{
    private const string Bin = "/usr/lib/postgresql/15/bin";
    private readonly string _data;
    private readonly string _log;
    private readonly string _sockets;
    private bool _running;

    private PostgresNode(string folder, int port)
    {
        Folder = folder;
        Port = port;
        _data = Path.Combine(folder, "data");
        _log = Path.Combine(folder, "postgres.log");
        _sockets = Path.Combine(folder, "sockets");
    }

    public string Folder { get; }

    public int Port { get; }

    public string Version { get; private set; } = "";

    public string ConnectionString(string database) => new NpgsqlConnectionStringBuilder
    {
        Host = "127.0.0.1",
        Port = Port,
        Username = "postgres",
        Database = database,
        // The harness restarts the server under load: a pool of 300 slots, half of max_connections.
        MaxPoolSize = 150,
        Timeout = 5,
    }.ConnectionString;

    public static async Task<PostgresNode> StartAsync(string folder, int port)
    {
        if (await Shell.PortOpenAsync(port))
        {
            throw new InvalidOperationException($"port {port} is taken; the harness's PostgreSQL needs it (--postgres-port)");
        }
        Directory.CreateDirectory(folder);
        var node = new PostgresNode(folder, port);
        await Shell.CheckAsync("install", ["-d", "-o", "postgres", "-g", "postgres", "-m", "700", node._data, node._sockets]);
        await Shell.CheckAsync("install", ["-o", "postgres", "-g", "postgres", "-m", "640", "/dev/null", node._log]);
        await AsPostgresAsync($"{Bin}/initdb", "-D", node._data, "-U", "postgres", "-E", "UTF8", "--locale=C", "--auth=trust");
        await File.AppendAllTextAsync(Path.Combine(node._data, "postgresql.conf"), string.Create(CultureInfo.InvariantCulture, $"""

            # pipelines-faults: loopback only, a port of its own; durable, as in production.
            listen_addresses = '127.0.0.1'
            port = {port}
            unix_socket_directories = '{node._sockets}'
            max_connections = 300
            fsync = on
            synchronous_commit = on

            """));
        await node.StartAgainAsync();
        await using var connection = new NpgsqlConnection(node.ConnectionString("postgres") + ";Pooling=false");
        await connection.OpenAsync();
        node.Version = connection.PostgreSqlVersion.ToString();
        return node;
    }

    /// <summary>Starts the stopped server and waits until it accepts connections (crash recovery included); returns how long that took.</summary>
    public async Task<TimeSpan> StartAgainAsync()
    {
        var clock = Stopwatch.StartNew();
        await AsPostgresAsync($"{Bin}/pg_ctl", "-D", _data, "-l", _log, "-w", "-t", "120", "start");
        _running = true;
        return clock.Elapsed;
    }

    /// <summary>The fault: <c>pg_ctl stop -m immediate</c>, which aborts every backend without a checkpoint, as a crash does.</summary>
    public async Task CrashAsync()
    {
        await AsPostgresAsync($"{Bin}/pg_ctl", "-D", _data, "-m", "immediate", "-w", "-t", "60", "stop");
        _running = false;
    }

    public async Task CreateDatabaseAsync(string name)
    {
        // Not pooled: a pooled connection may be one a restart of this server broke.
        await using var connection = new NpgsqlConnection(ConnectionString("postgres") + ";Pooling=false");
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand($"CREATE DATABASE \"{name}\"", connection);
        await command.ExecuteNonQueryAsync();
    }

    private static Task<string> AsPostgresAsync(params string[] command) =>
        Shell.CheckAsync("runuser", ["-u", "postgres", "--", .. command], timeout: TimeSpan.FromMinutes(3));

    public async ValueTask DisposeAsync()
    {
        NpgsqlConnection.ClearAllPools();
        if (_running)
        {
            await AsPostgresAsync($"{Bin}/pg_ctl", "-D", _data, "-m", "fast", "-w", "-t", "60", "stop");
            _running = false;
        }
    }
}
