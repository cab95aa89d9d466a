using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using Npgsql;
using Pipelines.Api.Tests.Infrastructure;
using Pipelines.Client;
using Pipelines.Tests;

namespace Pipelines.Api.Tests.EndToEnd;

/// <summary>
/// A distributed deployment for one test class, on real PostgreSQL and RabbitMQ: a database and a
/// broker vhost of its own (both removed afterwards), and two processes of the API binary — one
/// with only the API role, one with the coordinator, worker (handlers and containers) and scheduler.
/// </summary>
public sealed class Deployment : IAsyncLifetime
{
    private readonly string _database = $"api_e2e_{Guid.NewGuid():N}";
    private readonly string _vhost = $"api-e2e-{Guid.NewGuid():N}";
    private readonly string _folder = Directory.CreateTempSubdirectory("pipelines-api-e2e-").FullName;
    private HostProcess? _engine;
    private HostProcess? _api;
    private bool _created;

    public Uri ApiUrl => _api!.Url;

    public PipelinesClient Client(string? key = TestKeys.Admin) =>
        PipelinesClient.Create(ApiUrl, key);

    public HttpClient Http(string? key = TestKeys.Admin)
    {
        var http = new HttpClient { BaseAddress = ApiUrl };
        if (key is not null)
        {
            http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        }
        return http;
    }

    /// <summary>What both processes logged, for a failing test's message.</summary>
    public string Logs => $"{_engine?.Output}{_api?.Output}";

    public async Task InitializeAsync()
    {
        if (TestServices.MissingOf(postgres: true, rabbitMq: true) is not null && !TestServices.IsCi)
        {
            return; // every test of the class is skipped by ServiceFact
        }
        await ExecuteAsync($"CREATE DATABASE \"{_database}\"");
        using (var management = Management())
        {
            (await management.PutAsJsonAsync($"api/vhosts/{_vhost}", new { })).EnsureSuccessStatusCode();
            (await management.PutAsJsonAsync($"api/permissions/{_vhost}/guest", new { configure = ".*", write = ".*", read = ".*" })).EnsureSuccessStatusCode();
        }
        _created = true;
        var shared = new Dictionary<string, string>
        {
            ["Pipelines__Definitions"] = Path.Combine(AppContext.BaseDirectory, "EndToEnd", "e2e-pipelines.yaml"),
            ["Pipelines__Transport"] = "RabbitMq",
            ["Pipelines__RabbitMq"] = new UriBuilder(TestServices.RabbitMq) { Path = "/" + _vhost }.Uri.ToString(),
            ["Pipelines__Database__Provider"] = "PostgreSql",
            ["Pipelines__Database__ConnectionString"] = new NpgsqlConnectionStringBuilder(TestServices.Postgres) { Database = _database }.ConnectionString,
            ["ASPNETCORE_URLS"] = "http://127.0.0.1:0",
            ["Logging__LogLevel__Default"] = "Warning",
            ["Logging__LogLevel__Pipelines.Api"] = "Information",
        };
        // First the engine, which creates the schema; then the API.
        _engine = await HostProcess.StartAsync("engine", new Dictionary<string, string>(shared)
        {
            ["Pipelines__Roles"] = "coordinator,worker,containers,scheduler",
            ["Pipelines__Worker__Id"] = $"api-e2e-{Guid.NewGuid():N}"[..20],
        }, _folder);
        var api = new Dictionary<string, string>(shared)
        {
            ["Pipelines__Roles"] = "api",
            ["Pipelines__Api__MinimumScheduleInterval"] = "00:00:00",
        };
        var keys = new Dictionary<string, string?>();
        TestKeys.AddTo(keys);
        foreach (var (key, value) in keys)
        {
            api[key.Replace(":", "__", StringComparison.Ordinal)] = value!;
        }
        _api = await HostProcess.StartAsync("api", api, _folder);
    }

    public async Task DisposeAsync()
    {
        // The API first: nothing new arrives while the engine drains.
        if (_api is not null)
        {
            await _api.DisposeAsync();
        }
        if (_engine is not null)
        {
            await _engine.DisposeAsync();
        }
        if (_created)
        {
            NpgsqlConnection.ClearAllPools();
            await ExecuteAsync($"DROP DATABASE IF EXISTS \"{_database}\" WITH (FORCE)");
            using var management = Management();
            await management.DeleteAsync($"api/vhosts/{_vhost}");
        }
        Directory.Delete(_folder, recursive: true);
    }

    private static HttpClient Management()
    {
        var http = new HttpClient { BaseAddress = TestServices.RabbitMqManagement };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.ASCII.GetBytes("guest:guest")));
        return http;
    }

    private static async Task ExecuteAsync(string sql)
    {
        await using var connection = new NpgsqlConnection(TestServices.Postgres);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }
}
