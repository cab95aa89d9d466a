using Pipelines.Faults.Services;

namespace Pipelines.Faults.Engine;

/// <summary>
/// The services every row runs on: the harness's own PostgreSQL cluster and RabbitMQ node (never the
/// shared ones), the machine's Docker engine for container rows, and a folder for logs and ledgers.
/// Each row gets a database and a vhost of its own (<see cref="Deployment"/>).
/// </summary>
internal sealed class Cluster : IAsyncDisposable
{
    private Cluster(string folder, PostgresNode postgres, RabbitNode rabbit, TextWriter progress)
    {
        Folder = folder;
        Postgres = postgres;
        Rabbit = rabbit;
        Progress = progress;
    }

    public string Folder { get; }

    public PostgresNode Postgres { get; }

    public RabbitNode Rabbit { get; }

    /// <summary>Progress lines (stderr); the table goes to stdout.</summary>
    public TextWriter Progress { get; }

    public static async Task<Cluster> StartAsync(string folder, FaultOptions options, TextWriter progress)
    {
        Directory.CreateDirectory(folder);
        // The postgres user must reach its data folder below this one.
        File.SetUnixFileMode(folder, (UnixFileMode)0b111_101_101);
        progress.WriteLine($"faults: starting PostgreSQL on 127.0.0.1:{options.PostgresPort} and RabbitMQ on 127.0.0.1:{options.RabbitPort} under {folder}");
        var postgres = await PostgresNode.StartAsync(Path.Combine(folder, "postgres"), options.PostgresPort);
        try
        {
            var rabbit = await RabbitNode.StartAsync(Path.Combine(folder, "rabbitmq"), options.RabbitPort, options.RabbitPort + 10_000, options.RabbitPort + 20_000);
            return new Cluster(folder, postgres, rabbit, progress);
        }
        catch
        {
            await postgres.DisposeAsync();
            throw;
        }
    }

    public void Say(string line) => Progress.WriteLine($"faults: {DateTimeOffset.Now:HH:mm:ss} {line}");

    public async ValueTask DisposeAsync()
    {
        await Rabbit.DisposeAsync();
        await Postgres.DisposeAsync();
    }
}
