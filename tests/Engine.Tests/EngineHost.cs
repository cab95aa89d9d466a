using System.Text.Json.Nodes;
using MassTransit;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Pipelines.Core.Coordination;
using Pipelines.Core.Definitions;
using Pipelines.Core.Hosting;
using Pipelines.Core.Persistence;
using Pipelines.Core.Planning;
using Pipelines.Core.Runs;
using Pipelines.Workers.Steps;

namespace Pipelines.Engine.Tests;

/// <summary>A real host of the engine for a test: coordinator and/or worker roles on a given transport and run store.</summary>
internal sealed class EngineHost : IAsyncDisposable
{
    private readonly IHost _host;

    private EngineHost(IHost host) => _host = host;

    public IServiceProvider Services => _host.Services;

    public RunLauncher Launcher => Services.GetRequiredService<RunLauncher>();

    public RunStore Store => Services.GetRequiredService<RunStore>();

    public static PipelineCatalog Catalog(string yaml, IReadOnlyDictionary<string, string>? variables = null)
    {
        var result = new PipelineLoader(new PipelineLoaderOptions { Variables = variables ?? new Dictionary<string, string>() })
            .Load(System.Text.Encoding.UTF8.GetBytes(yaml), "test.yaml", Path.GetTempPath());
        Assert.True(result.Succeeded, string.Join(Environment.NewLine, result.Diagnostics));
        return new PipelineCatalog(result.Definitions!);
    }

    public static async Task<EngineHost> StartAsync(
        PipelineCatalog catalog,
        RunStoreOptions database,
        Action<PipelinesBuilder> roles,
        Action<PipelinesOptions>? options = null,
        Action<WorkerOptions>? worker = null,
        Action<CoordinatorOptions>? coordinator = null)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Logging.AddFilter(level => level >= LogLevel.Warning).AddSimpleConsole();
        builder.Services.AddSingleton(catalog);
        builder.Services.Configure<WorkerOptions>(o => worker?.Invoke(o));
        builder.Services.Configure<CoordinatorOptions>(o => coordinator?.Invoke(o));
        var pipelines = builder.Services.AddPipelines(new ConfigurationBuilder().Build(), o =>
        {
            o.Database = database;
            options?.Invoke(o);
        });
        roles(pipelines);
        var host = builder.Build();
        await host.StartAsync();
        return new EngineHost(host);
    }

    public Task<LaunchedRun> StartRunAsync(string pipeline, JsonObject? payload = null, string? idempotencyKey = null) =>
        Launcher.StartAsync(new RunRequest { Pipeline = pipeline, Payload = payload, IdempotencyKey = idempotencyKey }, CancellationToken.None);

    /// <summary>Waits until the run is terminal and returns it with its steps.</summary>
    public async Task<RunRecord> WaitForRunAsync(Guid runId, TimeSpan? timeout = null)
    {
        var deadline = DateTimeOffset.UtcNow + (timeout ?? TimeSpan.FromSeconds(30));
        while (true)
        {
            // A run published on the bus is stored by the coordinator, a moment after the publish.
            var run = await Store.ReadAsync(c => c.Runs.Include(r => r.Steps).SingleOrDefaultAsync(r => r.Id == runId));
            if (run is not null && run.State.IsTerminal())
            {
                return run;
            }
            if (DateTimeOffset.UtcNow > deadline)
            {
                Assert.Fail(run is null
                    ? $"run {runId} was never stored"
                    : $"run {runId} still {run.State} after {timeout}: {string.Join(", ", run.Steps.Select(s => $"{s.Name}={s.State}"))}");
            }
            await Task.Delay(50);
        }
    }

    public async Task WaitForStepAsync(Guid runId, string step, StepState state, TimeSpan? timeout = null)
    {
        var deadline = DateTimeOffset.UtcNow + (timeout ?? TimeSpan.FromSeconds(30));
        while (await Store.ReadAsync(c => c.Steps.Where(s => s.RunId == runId && s.Name == step).Select(s => s.State).SingleAsync()) != state)
        {
            Assert.True(DateTimeOffset.UtcNow < deadline, $"step '{step}' of run {runId} never became {state}");
            await Task.Delay(50);
        }
    }

    public Task<List<StepAttemptRecord>> AttemptsAsync(Guid runId) =>
        Store.ReadAsync(c => c.Attempts.Where(a => a.RunId == runId).OrderBy(a => a.Step).ThenBy(a => a.Number).ToListAsync());

    public Task PublishAsync<T>(T message) where T : class => Services.GetRequiredService<IBus>().Publish(message);

    public async ValueTask DisposeAsync()
    {
        await _host.StopAsync(TimeSpan.FromSeconds(30));
        _host.Dispose();
    }
}

/// <summary>A SQLite run store in a temporary file, deleted afterwards.</summary>
internal sealed class TemporarySqlite : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("pipelines-test-").FullName;

    public RunStoreOptions Options => new() { Provider = RunStoreProvider.Sqlite, ConnectionString = $"Data Source={Path.Combine(_folder, "runs.db")}" };

    public void Dispose()
    {
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        Directory.Delete(_folder, recursive: true);
    }
}
