using System.Net.Http.Headers;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Pipelines.Client;
using Pipelines.Core.Execution;
using Pipelines.Workers.Handlers;

namespace Pipelines.Api.Tests.Infrastructure;

/// <summary>
/// The all-in-one host in process — API, coordinator, worker and scheduler on the in-memory bus and
/// a SQLite file of its own — with the test pipelines (pipelines.yaml beside the tests), the test
/// keys and the <c>test.countdown</c> handler. Subclasses change settings in <see cref="Configure"/>.
/// </summary>
public class ApiFactory : WebApplicationFactory<Program>
{
    private readonly string _folder = Directory.CreateTempSubdirectory("pipelines-api-tests-").FullName;

    /// <summary>The value of the registry password secret, which no response may contain.</summary>
    public const string RegistrySecret = "hunter2-registry-secret";

    protected virtual void Configure(IDictionary<string, string?> settings)
    {
    }

    protected virtual void ConfigureServices(IServiceCollection services)
    {
    }

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        var settings = new Dictionary<string, string?>
        {
            ["Pipelines:Roles"] = "api,coordinator,worker,scheduler",
            ["Pipelines:Definitions"] = Path.Combine(AppContext.BaseDirectory, "pipelines.yaml"),
            ["Pipelines:Database:ConnectionString"] = $"Data Source={Path.Combine(_folder, "pipelines.db")}",
            ["Pipelines:Worker:Id"] = $"api-tests-{Guid.NewGuid():N}"[..20],
            ["Pipelines:Secrets:REGISTRY_PASSWORD"] = RegistrySecret,
            ["Pipelines:Api:LogPollInterval"] = "00:00:00.050",
            ["Logging:LogLevel:Default"] = "Warning",
        };
        TestKeys.AddTo(settings);
        Configure(settings);
        foreach (var (key, value) in settings)
        {
            builder.UseSetting(key, value);
        }
        builder.ConfigureTestServices(services =>
        {
            services.AddSingleton(new HandlerRegistration("test.countdown", _ => new DelegateStepHandler(CountdownAsync)));
            ConfigureServices(services);
        });
    }

    /// <summary>An HTTP client authenticated with <paramref name="key"/> (none: anonymous).</summary>
    public HttpClient Http(string? key = TestKeys.Admin)
    {
        var http = CreateClient(new WebApplicationFactoryClientOptions { AllowAutoRedirect = false });
        if (key is not null)
        {
            http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        }
        return http;
    }

    public PipelinesClient Client(string? key = TestKeys.Admin) => new(Http(key));

    /// <summary>Writes <c>line 1</c> … <c>line N</c> to its log, <c>interval_ms</c> apart.</summary>
    private static async Task<JsonNode?> CountdownAsync(StepContext context)
    {
        var lines = context.Event["lines"]?.GetValue<int>() ?? 5;
        var interval = context.Event["interval_ms"]?.GetValue<int>() ?? 100;
        for (var i = 1; i <= lines; i++)
        {
            context.Log.Write("stdout", $"line {i}");
            await Task.Delay(interval, context.CancellationToken);
        }
        return new JsonObject { ["lines"] = lines };
    }

    protected override void Dispose(bool disposing)
    {
        base.Dispose(disposing);
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        try
        {
            Directory.Delete(_folder, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
