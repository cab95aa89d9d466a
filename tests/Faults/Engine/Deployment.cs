using System.Diagnostics;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Pipelines.Core.Coordination;
using Pipelines.Core.Hosting;
using Pipelines.Core.Persistence;
using Pipelines.Core.Planning;
using Pipelines.Faults.Recording;
using Pipelines.Faults.Services;

namespace Pipelines.Faults.Engine;

/// <summary>
/// One row's deployment of Pipelines, as an operator runs it: a database and a vhost of its own on
/// the harness's services, the coordinator hosted in this process (it is what the faults observe,
/// not what they hit), and worker processes started from the real <c>pipelines-worker</c> program.
/// Every demo handler execution lands in the row's side-effect ledger.
/// </summary>
internal sealed class Deployment : IAsyncDisposable
{
    private readonly List<IHost> _hosts = [];
    private readonly List<FileLoggerProvider> _logs = [];

    private Deployment(Cluster cluster, string name)
    {
        Cluster = cluster;
        Name = name;
        Folder = Path.Combine(cluster.Folder, "rows", name);
        Database = "faults_" + name.Replace('-', '_');
        Vhost = name;
    }

    public Cluster Cluster { get; }

    public string Name { get; }

    /// <summary>The row's folder: definitions, ledger, process logs.</summary>
    public string Folder { get; }

    public string Database { get; }

    public string Vhost { get; }

    public string DefinitionFile => Path.Combine(Folder, "pipelines.yaml");

    public string LedgerFolder => Path.Combine(Folder, "ledger");

    public string ConnectionString => Cluster.Postgres.ConnectionString(Database);

    public string RabbitUri => Cluster.Rabbit.Uri(Vhost);

    public List<EngineProcess> Workers { get; } = [];

    /// <summary>The coordinator's process: its run store and launcher are the harness's client.</summary>
    public IServiceProvider Services => _hosts.Count > 0 ? _hosts[0].Services : throw new InvalidOperationException("no coordinator started");

    public RunStore Store => Services.GetRequiredService<RunStore>();

    public RunLauncher Launcher => Services.GetRequiredService<RunLauncher>();

    public RunStoreOptions StoreOptions => new() { Provider = RunStoreProvider.PostgreSql, ConnectionString = ConnectionString };

    /// <summary>The settings every worker of the row starts with; rows add their own.</summary>
    public Dictionary<string, string> WorkerEnvironment { get; } = [];

    public static async Task<Deployment> CreateAsync(Cluster cluster, string name, string definitions)
    {
        var deployment = new Deployment(cluster, name);
        Directory.CreateDirectory(deployment.LedgerFolder);
        await File.WriteAllTextAsync(deployment.DefinitionFile, definitions);
        await cluster.Postgres.CreateDatabaseAsync(deployment.Database);
        await cluster.Rabbit.CreateVhostAsync(deployment.Vhost);
        foreach (var (key, value) in new Dictionary<string, string>
        {
            ["Pipelines__Transport"] = "RabbitMq",
            ["Pipelines__RabbitMq"] = deployment.RabbitUri,
            ["Pipelines__Database__Provider"] = "PostgreSql",
            ["Pipelines__Database__ConnectionString"] = deployment.ConnectionString,
            ["Pipelines__Definitions"] = deployment.DefinitionFile,
            ["Pipelines__Containers__Enabled"] = "false",
            ["Pipelines__Worker__LeaseDuration"] = FaultOptions.LeaseDuration.ToString("c"),
            ["PIPELINES_LEDGER"] = deployment.LedgerFolder,
        })
        {
            deployment.WorkerEnvironment[key] = value;
        }
        return deployment;
    }

    /// <summary>Starts the coordinator in this process (it migrates the run store first).</summary>
    public Task<IHost> StartCoordinatorAsync(LogLevel logLevel = LogLevel.Warning, IReadOnlyDictionary<string, string?>? settings = null) =>
        StartHostAsync("coordinator", logLevel, pipelines => pipelines.AddCoordinator(), settings: settings);

    /// <summary>Starts a host of <paramref name="roles"/> on the row's database and vhost in this process.</summary>
    public async Task<IHost> StartHostAsync(
        string name, LogLevel logLevel, Action<PipelinesBuilder> roles, Action<IServiceCollection>? services = null,
        IReadOnlyDictionary<string, string?>? settings = null)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Configuration.AddInMemoryCollection(settings ?? new Dictionary<string, string?>());
        var log = new FileLoggerProvider(Path.Combine(Folder, $"{name}.log"), logLevel);
        _logs.Add(log);
        builder.Logging.SetMinimumLevel(logLevel).AddProvider(log);
        builder.Services.AddSingleton(PipelineCatalog.Load(DefinitionFile));
        var pipelines = builder.Services.AddPipelines(builder.Configuration, o =>
        {
            o.Transport = TransportKind.RabbitMq;
            o.RabbitMq = RabbitUri;
            o.Database = StoreOptions;
            o.Definitions = DefinitionFile;
        });
        roles(pipelines);
        services?.Invoke(builder.Services);
        var host = builder.Build();
        await host.StartAsync();
        _hosts.Add(host);
        return host;
    }

    public EngineProcess StartWorker(string id, IReadOnlyDictionary<string, string>? settings = null)
    {
        var environment = new Dictionary<string, string>(WorkerEnvironment);
        foreach (var (key, value) in settings ?? new Dictionary<string, string>())
        {
            environment[key] = value;
        }
        var worker = EngineProcess.Start(id, environment, Folder);
        Workers.Add(worker);
        return worker;
    }

    /// <summary>Waits until <paramref name="count"/> consumers listen on <paramref name="queue"/>; returns how long that took.</summary>
    public async Task<TimeSpan> WaitForConsumersAsync(string queue, int count, TimeSpan? timeout = null)
    {
        var clock = Stopwatch.StartNew();
        await Shell.WaitUntilAsync(async () => await Cluster.Rabbit.ConsumersAsync(Vhost, queue) >= count,
            timeout ?? TimeSpan.FromSeconds(90), $"{count} consumers on {queue}");
        return clock.Elapsed;
    }

    public Ledger ReadLedger() => Ledger.Read(LedgerFolder);

    /// <summary>Lines of an in-process role's log (e.g. <c>coordinator</c>) that contain <paramref name="text"/>; the log may still be written.</summary>
    public int CountLogLines(string role, string text)
    {
        using var reader = new StreamReader(new FileStream(Path.Combine(Folder, $"{role}.log"), FileMode.Open, FileAccess.Read, FileShare.ReadWrite));
        var count = 0;
        while (reader.ReadLine() is { } line)
        {
            count += line.Contains(text, StringComparison.Ordinal) ? 1 : 0;
        }
        return count;
    }

    /// <summary>Kills every worker process still running (before a row cleans up what they created).</summary>
    public void StopWorkers()
    {
        foreach (var worker in Workers)
        {
            worker.Dispose();
        }
    }

    public async ValueTask DisposeAsync()
    {
        StopWorkers();
        foreach (var host in Enumerable.Reverse(_hosts))
        {
            try
            {
                await host.StopAsync(TimeSpan.FromSeconds(30));
            }
            catch (OperationCanceledException)
            {
                // A host that cannot reach a killed broker gives up stopping; disposing it is enough.
            }
            host.Dispose();
        }
        foreach (var log in _logs)
        {
            log.Dispose();
        }
    }
}
