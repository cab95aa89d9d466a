using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using Npgsql;

namespace Pipelines.Tests;

/// <summary>A PostgreSQL database of its own for one test class: created with a random name, dropped afterwards.</summary>
internal sealed class ScratchPostgres : IAsyncDisposable
{
    private ScratchPostgres(string name) => Name = name;

    public string Name { get; }

    public string ConnectionString => new NpgsqlConnectionStringBuilder(TestServices.Postgres) { Database = Name }.ConnectionString;

    public static async Task<ScratchPostgres> CreateAsync(string purpose)
    {
        var database = new ScratchPostgres($"{purpose}_{Guid.NewGuid():N}");
        await ExecuteAsync($"CREATE DATABASE \"{database.Name}\"");
        return database;
    }

    public async ValueTask DisposeAsync() => await ExecuteAsync($"DROP DATABASE IF EXISTS \"{Name}\" WITH (FORCE)");

    private static async Task ExecuteAsync(string sql)
    {
        await using var connection = new NpgsqlConnection(TestServices.Postgres);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }
}

/// <summary>
/// A RabbitMQ virtual host of its own for one test class, so that queues of parallel test classes
/// (which share names like <c>pipelines-coordinator</c>) never see each other's messages.
/// </summary>
internal sealed class ScratchVhost : IAsyncDisposable
{
    private static readonly HttpClient Management = CreateManagementClient();

    private ScratchVhost(string name) => Name = name;

    public string Name { get; }

    public string Uri => new UriBuilder(TestServices.RabbitMq) { Path = "/" + System.Uri.EscapeDataString(Name) }.Uri.ToString();

    public static async Task<ScratchVhost> CreateAsync(string purpose)
    {
        var vhost = new ScratchVhost($"{purpose}-{Guid.NewGuid():N}");
        (await Management.PutAsync($"api/vhosts/{vhost.Name}", null)).EnsureSuccessStatusCode();
        (await Management.PutAsJsonAsync($"api/permissions/{vhost.Name}/guest", new { configure = ".*", write = ".*", read = ".*" })).EnsureSuccessStatusCode();
        return vhost;
    }

    /// <summary>Consumers currently attached to <paramref name="queue"/> (0 when the queue does not exist yet).</summary>
    public async Task<int> ConsumersAsync(string queue)
    {
        using var response = await Management.GetAsync($"api/queues/{Name}/{System.Uri.EscapeDataString(queue)}");
        if (!response.IsSuccessStatusCode)
        {
            return 0;
        }
        var body = await response.Content.ReadFromJsonAsync<System.Text.Json.Nodes.JsonObject>();
        return body?["consumers"]?.GetValue<int>() ?? 0;
    }

    public async ValueTask DisposeAsync() => await Management.DeleteAsync($"api/vhosts/{Name}");

    private static HttpClient CreateManagementClient()
    {
        var client = new HttpClient
        {
            BaseAddress = new System.Uri((Environment.GetEnvironmentVariable("PIPELINES_RABBITMQ_MANAGEMENT") ?? "http://127.0.0.1:15672").TrimEnd('/') + "/"),
        };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.ASCII.GetBytes("guest:guest")));
        return client;
    }
}
