using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using Pipelines.Faults.Engine;
using Pipelines.Faults.Report;
using Pipelines.Faults.Rows;
using Pipelines.Faults.Services;

namespace Pipelines.Faults;

/// <summary>Runs the selected rows one after another on the harness's own services, then prints the report.</summary>
internal static class FaultSuite
{
    public static IReadOnlyList<IRow> All { get; } =
    [
        new WorkerKillLoop(),
        new SigtermBusyWorker(),
        new BrokerRestarts(),
        new ConsumerTimeout(),
        new DatabaseRestart(),
        new SchedulerReplicas(),
        new ContainerOrphans(),
        new MalformedDefinitions(),
        new PolicyCorpus(),
        new ContainerAbuse(),
        new SecretCanary(),
        new ApiFuzzing(),
    ];

    /// <summary>Minimal reproductions of what the suite found; run only when named (<c>--rows repro-claim</c>).</summary>
    public static IReadOnlyList<IRow> Reproductions { get; } =
    [
        new ReproClaimAfterRestart(),
        new ReproPausedReplica(),
        new ReproNulInQuery(),
    ];

    public static async Task<int> RunAsync(FaultOptions options, TextWriter output, TextWriter progress, CancellationToken cancellationToken)
    {
        var rows = All.Where(r => options.Runs(r.Id))
            .Concat(Reproductions.Where(r => options.Rows.Any(id => r.Id.StartsWith(id, StringComparison.OrdinalIgnoreCase) && id.StartsWith("repro", StringComparison.OrdinalIgnoreCase))))
            .ToList();
        if (rows.Count == 0)
        {
            progress.WriteLine($"faults: no row matches {string.Join(",", options.Rows)}; rows: {string.Join(", ", All.Select(r => r.Id))}");
            return 2;
        }
        var folder = Directory.CreateTempSubdirectory("pipelines-faults-").FullName;
        var results = new List<RowResult>();
        var clock = Stopwatch.StartNew();
        Cluster? cluster = null;
        try
        {
            if (rows.Any(r => r.NeedsCluster))
            {
                cluster = await Cluster.StartAsync(folder, options, progress);
            }
            var dockerMissing = rows.Any(r => r.NeedsDocker) ? await DockerMissingAsync() : null;
            foreach (var row in rows)
            {
                cancellationToken.ThrowIfCancellationRequested();
                if (row.NeedsDocker && dockerMissing is not null)
                {
                    results.Add(RowResult.Of(row) with { Passed = false, Notes = [dockerMissing] });
                    continue;
                }
                progress.WriteLine($"faults: {DateTimeOffset.Now:HH:mm:ss} row {row.Id}: {row.Title}");
                var rowClock = Stopwatch.StartNew();
                RowResult result;
                try
                {
                    result = await row.RunAsync(cluster!, options, cancellationToken);
                }
                catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
                {
                    result = RowResult.Of(row) with { Passed = false, Notes = [$"the row could not complete: {e.GetType().Name}: {e.Message}"] };
                    progress.WriteLine($"faults: row {row.Id} failed: {e}");
                }
                result = result with { Took = rowClock.Elapsed };
                results.Add(result);
                progress.WriteLine($"faults: {DateTimeOffset.Now:HH:mm:ss} row {row.Id}: {result.Verdict} in {RowResult.Seconds(rowClock.Elapsed)}");
            }
        }
        finally
        {
            if (cluster is not null)
            {
                await cluster.DisposeAsync();
            }
            if (options.Keep)
            {
                progress.WriteLine($"faults: logs, ledgers and definitions kept in {folder}");
            }
            else
            {
                TryDelete(folder);
            }
        }

        var report = ResultTable.Render(results, await HeaderAsync(options, cluster, clock.Elapsed));
        await output.WriteAsync(report);
        if (options.Output is { } file)
        {
            await File.WriteAllTextAsync(file, report, CancellationToken.None);
        }
        var failing = results.Where(r => r.Passed == false && !options.KnownMissed.Contains(r.Id, StringComparer.OrdinalIgnoreCase)).ToList();
        foreach (var known in results.Where(r => r.Passed == false).Except(failing))
        {
            progress.WriteLine($"faults: row {known.Id} missed its bar, as known (--known-missed): see docs/reliability.md");
        }
        return failing.Count == 0 ? 0 : 1;
    }

    private static async Task<string?> DockerMissingAsync()
    {
        using var docker = new DockerHost();
        return await docker.MissingAsync();
    }

    private static async Task<string> HeaderAsync(FaultOptions options, Cluster? cluster, TimeSpan took)
    {
        var commit = await TryAsync("git", ["rev-parse", "--short", "HEAD"]);
        var dirty = (await TryAsync("git", ["status", "--porcelain", "--untracked-files=no"])).Length > 0 ? " (with uncommitted changes)" : "";
        var docker = await TryAsync("docker", ["version", "--format", "{{.Server.Version}}"]);
        string Version(Type type) => type.Assembly.GetName().Version?.ToString(3) ?? "?";
        return string.Create(CultureInfo.InvariantCulture, $"""
            Fault-injection run, {options.Mode} mode, seed {options.Seed}, {DateTimeOffset.UtcNow:yyyy-MM-dd HH:mm} UTC, {RowResult.Seconds(took)} in all.
            Commit {commit}{dirty}; {Environment.ProcessorCount} cores, {RuntimeInformation.OSDescription}; .NET {Environment.Version};
            PostgreSQL {cluster?.Postgres.Version ?? "—"}, RabbitMQ {cluster?.Rabbit.Version ?? "—"} (single node), Docker {(docker.Length > 0 ? docker : "—")},
            MassTransit {Version(typeof(MassTransit.IBus))}, Quartz.NET {Version(typeof(Quartz.IScheduler))}, Npgsql {Version(typeof(Npgsql.NpgsqlConnection))}.
            """);
    }

    private static async Task<string> TryAsync(string file, string[] arguments)
    {
        try
        {
            var result = await Shell.RunAsync(file, arguments, timeout: TimeSpan.FromSeconds(20));
            return result.ExitCode == 0 ? result.Output.Trim() : "";
        }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or TimeoutException)
        {
            return "";
        }
    }

    private static void TryDelete(string folder)
    {
        try
        {
            Directory.Delete(folder, recursive: true);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
