using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Npgsql;

namespace Pipelines.Bench.Benchmarks.Engine;

/// <summary>
/// The RabbitMQ and PostgreSQL the engine group runs on, found through the settings
/// <c>eng/services.sh</c> exports (<c>PIPELINES_RABBITMQ</c>, <c>PIPELINES_RABBITMQ_MANAGEMENT</c>,
/// <c>PIPELINES_POSTGRES</c>; loopback defaults). Every benchmark gets a scratch virtual host and
/// database of its own, so the broker's and PostgreSQL's counters hold its traffic and nothing
/// else; disposing removes them all.
/// </summary>
internal sealed class BenchServices : IAsyncDisposable
{
    private readonly HttpClient _management;
    private readonly Uri _broker;
    private readonly string _server;
    private readonly List<string> _virtualHosts = [];
    private readonly List<string> _databases = [];

    private BenchServices(Uri broker, HttpClient management, string server)
    {
        _broker = broker;
        _management = management;
        _server = server;
    }

    /// <summary>RabbitMQ and PostgreSQL versions, for the report's header.</summary>
    public string Versions { get; private set; } = "";

    /// <summary>Connects to both services, or says which one is missing and how to start it.</summary>
    public static async Task<(BenchServices? Services, string? Problem)> ConnectAsync(CancellationToken cancellationToken)
    {
        var broker = new Uri(Environment.GetEnvironmentVariable("PIPELINES_RABBITMQ") ?? "amqp://guest:guest@127.0.0.1:5672/");
        var management = new Uri(Environment.GetEnvironmentVariable("PIPELINES_RABBITMQ_MANAGEMENT") ?? "http://127.0.0.1:15672");
        var server = Environment.GetEnvironmentVariable("PIPELINES_POSTGRES") ?? "Host=127.0.0.1;Port=5432;Username=pipelines;Database=pipelines";
        var problems = new List<string>();
        string? postgresVersion = null;
        try
        {
            await using var connection = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(server) { Timeout = 3 }.ConnectionString);
            await connection.OpenAsync(cancellationToken);
            postgresVersion = connection.PostgreSqlVersion.ToString();
        }
        catch (Exception exception) when (exception is NpgsqlException or SocketException or TimeoutException)
        {
            problems.Add($"PostgreSQL ({Redacted(server)}): {exception.Message}");
        }

        if (!await AnswersAsync(broker.Host, broker.IsDefaultPort ? 5672 : broker.Port, cancellationToken))
        {
            problems.Add($"RabbitMQ: nothing answers on {broker.Host}:{(broker.IsDefaultPort ? 5672 : broker.Port)}");
        }
        var client = new HttpClient { BaseAddress = management, Timeout = TimeSpan.FromSeconds(10) };
        var (user, password) = Credentials(broker);
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes($"{user}:{password}")));
        string? rabbitVersion = null;
        try
        {
            using var overview = await client.GetFromJsonAsync<JsonDocument>("/api/overview", cancellationToken);
            rabbitVersion = overview?.RootElement.GetProperty("rabbitmq_version").GetString();
        }
        catch (Exception exception) when (exception is HttpRequestException or TaskCanceledException or JsonException)
        {
            problems.Add($"RabbitMQ management API ({management}): {exception.Message}");
        }

        if (problems.Count > 0)
        {
            client.Dispose();
            return (null, string.Join(Environment.NewLine, problems.Select(p => "  " + p)));
        }
        return (new BenchServices(broker, client, server) { Versions = $"RabbitMQ {rabbitVersion}, PostgreSQL {postgresVersion}" }, null);
    }

    /// <summary>Creates a virtual host the broker's user may use fully, removed on dispose.</summary>
    public async Task<string> CreateVirtualHostAsync(string purpose, CancellationToken cancellationToken)
    {
        var name = $"pipelines-bench-{purpose}-{Guid.NewGuid():N}"[..48];
        using (var created = await _management.PutAsync(VirtualHostPath(name), null, cancellationToken))
        {
            created.EnsureSuccessStatusCode();
        }
        _virtualHosts.Add(name);
        var (user, _) = Credentials(_broker);
        using var permitted = await _management.PutAsJsonAsync(
            $"/api/permissions/{Uri.EscapeDataString(name)}/{Uri.EscapeDataString(user)}",
            new { configure = ".*", write = ".*", read = ".*" }, cancellationToken);
        permitted.EnsureSuccessStatusCode();
        return name;
    }

    /// <summary>The AMQP address of <paramref name="virtualHost"/> on the broker.</summary>
    public Uri Amqp(string virtualHost) => new UriBuilder(_broker) { Path = "/" + Uri.EscapeDataString(virtualHost) }.Uri;

    /// <summary>Messages published into the virtual host so far, as the management API last aggregated them (every 5 s by default).</summary>
    public async Task<long> PublishedAsync(string virtualHost, CancellationToken cancellationToken)
    {
        using var stats = await _management.GetFromJsonAsync<JsonDocument>(VirtualHostPath(virtualHost), cancellationToken);
        return stats!.RootElement.TryGetProperty("message_stats", out var messages) && messages.TryGetProperty("publish", out var publish)
            ? publish.GetInt64()
            : 0;
    }

    /// <summary>
    /// Publish counts once the broker's statistics have caught up: the management plugin aggregates
    /// them periodically, so counts are read until two reads a collection interval apart agree.
    /// </summary>
    public async Task<Dictionary<string, long>> SettledPublishCountsAsync(IEnumerable<string> virtualHosts, CancellationToken cancellationToken)
    {
        var hosts = virtualHosts.ToList();
        async Task<Dictionary<string, long>> ReadAsync()
        {
            var counts = new Dictionary<string, long>(StringComparer.Ordinal);
            foreach (var host in hosts)
            {
                counts[host] = await PublishedAsync(host, cancellationToken);
            }
            return counts;
        }

        var previous = await ReadAsync();
        for (var round = 0; round < 6; round++)
        {
            await Task.Delay(StatisticsInterval, cancellationToken);
            var current = await ReadAsync();
            if (current.All(c => previous[c.Key] == c.Value))
            {
                return current;
            }
            previous = current;
        }
        return previous;
    }

    /// <summary>Consumers of a queue; 0 while the queue does not exist yet.</summary>
    public async Task<int> ConsumersAsync(string virtualHost, string queue, CancellationToken cancellationToken)
    {
        using var response = await _management.GetAsync($"/api/queues/{Uri.EscapeDataString(virtualHost)}/{Uri.EscapeDataString(queue)}", cancellationToken);
        if (!response.IsSuccessStatusCode)
        {
            return 0;
        }
        using var queueStats = await response.Content.ReadFromJsonAsync<JsonDocument>(cancellationToken);
        return queueStats!.RootElement.TryGetProperty("consumers", out var consumers) ? consumers.GetInt32() : 0;
    }

    /// <summary>Creates an empty database, dropped on dispose.</summary>
    public async Task<string> CreateDatabaseAsync(string purpose, CancellationToken cancellationToken)
    {
        var name = $"pipelines_bench_{purpose.Replace('-', '_')}_{Guid.NewGuid():N}"[..48];
        await ExecuteAsync($"CREATE DATABASE \"{name}\"", cancellationToken);
        _databases.Add(name);
        return name;
    }

    /// <summary>A connection string to <paramref name="database"/> whose sessions show as <paramref name="application"/> in <c>pg_stat_activity</c>.</summary>
    public string ConnectionString(string database, string application) =>
        new NpgsqlConnectionStringBuilder(_server) { Database = database, ApplicationName = application }.ConnectionString;

    /// <summary>
    /// The database's counters once no session is connected to it. A PostgreSQL backend sends its
    /// counters to <c>pg_stat_database</c> at most once a second, and an idle one up to 10 s late, but
    /// always before it exits: so counters read when the last session has gone are exact.
    /// </summary>
    public async Task<DatabaseCounters> SettledCountersAsync(string database, CancellationToken cancellationToken)
    {
        NpgsqlConnection.ClearAllPools();
        var deadline = DateTimeOffset.UtcNow + TimeSpan.FromSeconds(30);
        while (true)
        {
            var (sessions, counters) = await CountersAsync(database, cancellationToken);
            if (sessions == 0)
            {
                return counters;
            }
            if (DateTimeOffset.UtcNow > deadline)
            {
                throw new InvalidOperationException($"database {database} still has {sessions} session(s) 30 s after its clients stopped");
            }
            await Task.Delay(50, cancellationToken);
        }
    }

    /// <summary>Sessions connected to the database and its counters as last flushed (see <see cref="SettledCountersAsync"/>).</summary>
    public async Task<(int Sessions, DatabaseCounters Counters)> CountersAsync(string database, CancellationToken cancellationToken)
    {
        await using var connection = new NpgsqlConnection(_server);
        await connection.OpenAsync(cancellationToken);
        await using var command = new NpgsqlCommand(
            "SELECT numbackends, xact_commit, xact_rollback, tup_returned, tup_fetched, tup_inserted, tup_updated, tup_deleted " +
            "FROM pg_stat_database WHERE datname = @name", connection);
        command.Parameters.AddWithValue("name", database);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        if (!await reader.ReadAsync(cancellationToken))
        {
            throw new InvalidOperationException($"no statistics for database {database}");
        }
        return (reader.GetInt32(0), new DatabaseCounters(
            reader.GetInt64(1), reader.GetInt64(2), reader.GetInt64(3), reader.GetInt64(4), reader.GetInt64(5), reader.GetInt64(6), reader.GetInt64(7)));
    }

    /// <summary>Removes every virtual host and database this instance created.</summary>
    public async ValueTask DisposeAsync()
    {
        NpgsqlConnection.ClearAllPools();
        foreach (var host in _virtualHosts)
        {
            try
            {
                using var deleted = await _management.DeleteAsync(VirtualHostPath(host));
            }
            catch (HttpRequestException exception)
            {
                await Console.Error.WriteLineAsync($"engine: could not delete virtual host {host}: {exception.Message}");
            }
        }
        foreach (var database in _databases)
        {
            try
            {
                await ExecuteAsync($"DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)", CancellationToken.None);
            }
            catch (NpgsqlException exception)
            {
                await Console.Error.WriteLineAsync($"engine: could not drop database {database}: {exception.Message}");
            }
        }
        _management.Dispose();
    }

    /// <summary>The management plugin's default <c>collect_statistics_interval</c>, plus a margin.</summary>
    private static readonly TimeSpan StatisticsInterval = TimeSpan.FromSeconds(5.5);

    private static string VirtualHostPath(string name) => $"/api/vhosts/{Uri.EscapeDataString(name)}";

    private static (string User, string Password) Credentials(Uri broker)
    {
        var parts = broker.UserInfo.Split(':', 2);
        return parts.Length == 2 && parts[0].Length > 0
            ? (Uri.UnescapeDataString(parts[0]), Uri.UnescapeDataString(parts[1]))
            : ("guest", "guest");
    }

    private static string Redacted(string connectionString) =>
        new NpgsqlConnectionStringBuilder(connectionString) { Password = null }.ConnectionString;

    private async Task ExecuteAsync(string sql, CancellationToken cancellationToken)
    {
        await using var connection = new NpgsqlConnection(_server);
        await connection.OpenAsync(cancellationToken);
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    private static async Task<bool> AnswersAsync(string host, int port, CancellationToken cancellationToken)
    {
        try
        {
            using var client = new TcpClient();
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(TimeSpan.FromSeconds(2));
            await client.ConnectAsync(host, port, timeout.Token);
            return true;
        }
        catch (Exception exception) when (exception is SocketException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
        {
            return false;
        }
    }
}

/// <summary>A database's counters from <c>pg_stat_database</c>: transactions and rows.</summary>
internal sealed record DatabaseCounters(long Commits, long Rollbacks, long Returned, long Fetched, long Inserted, long Updated, long Deleted)
{
    public static DatabaseCounters operator -(DatabaseCounters after, DatabaseCounters before) => new(
        after.Commits - before.Commits, after.Rollbacks - before.Rollbacks, after.Returned - before.Returned, after.Fetched - before.Fetched,
        after.Inserted - before.Inserted, after.Updated - before.Updated, after.Deleted - before.Deleted);

    /// <summary>Named alternative to the operator (CA2225).</summary>
    public static DatabaseCounters Subtract(DatabaseCounters after, DatabaseCounters before) => after - before;
}
