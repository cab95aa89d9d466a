using Npgsql;
using Pipelines.Core.Definitions;
using Pipelines.Core.Persistence;
using Pipelines.Scheduler.Hosting;
using Pipelines.Scheduler.Schedules;
using Pipelines.Tests;

namespace Pipelines.Scheduler.Tests;

/// <summary>
/// The connections Quartz opens for a burst of fires. Npgsql closes idle ones every
/// <c>Connection Idle Lifetime</c>; a scheduler that let it would open them all again at the next burst,
/// and that burst's fires would come late.
/// </summary>
public sealed class ConnectionPoolTests(ScratchDatabase database) : IClassFixture<ScratchDatabase>
{
    private const int Schedules = 16;
    private const int FiresEach = 3;
    private const int WideBurst = 100;

    /// <summary>The completions Quartz may run at once, and the scheduler's own rounds, check-ins and misfire scans.</summary>
    private const int MostQuartzConnections = PacedCompletionJobStore.MaxConcurrentCompletions + 4;

    [ServiceFact]
    public async Task connections_opened_for_a_burst_of_fires_stay_open_through_the_pools_idle_lifetime()
    {
        // Npgsql's pruning, every 2 s here instead of every 300 s.
        var pruned = new RunStoreOptions
        {
            Provider = RunStoreProvider.PostgreSql,
            ConnectionString = new NpgsqlConnectionStringBuilder(database.Options.ConnectionString)
            {
                ConnectionIdleLifetime = 2,
                ConnectionPruningInterval = 1,
            }.ConnectionString,
        };
        await using var scheduler = await SchedulerTestHost.StartAsync(SchedulerTestHost.Catalog(Pipelines.Report), pruned);
        var opened = await FireBurstsAsync(scheduler, "burst", Schedules, FiresEach);

        Assert.True(opened.Count >= 2, $"the bursts opened {opened.Count} of Quartz's connections; the test needs several");
        await Task.Delay(TimeSpan.FromSeconds(5));
        var open = await QuartzConnectionsAsync();

        var closed = opened.Except(open).ToList();
        Assert.True(closed.Count == 0, $"{closed.Count} of the {opened.Count} connections the bursts opened were closed while idle");
    }

    [ServiceFact]
    public async Task a_burst_of_fires_is_completed_on_a_few_connections()
    {
        await using var scheduler = await SchedulerTestHost.StartAsync(SchedulerTestHost.Catalog(Pipelines.Report), database.Options);
        var opened = await FireBurstsAsync(scheduler, "wide", WideBurst, FiresEach);

        Assert.True(opened.Count <= MostQuartzConnections,
            $"bursts of {WideBurst} fires opened {opened.Count} of Quartz's connections; at most {MostQuartzConnections} expected");
    }

    /// <summary>
    /// Creates schedules that fire together, <paramref name="fires"/> times, and waits for their runs and
    /// the fires' completions; the Quartz connections seen meanwhile that were not open before.
    /// </summary>
    private async Task<HashSet<int>> FireBurstsAsync(SchedulerTestHost scheduler, string prefix, int schedules, int fires)
    {
        var before = await QuartzConnectionsAsync();
        var seen = new HashSet<int>();
        // Far enough ahead for creating the schedules on a slow machine.
        var start = DateTimeOffset.FromUnixTimeSeconds(DateTimeOffset.UtcNow.ToUnixTimeSeconds() + 3 + schedules / 10);
        for (var i = 0; i < schedules; i++)
        {
            await scheduler.Schedules.CreateAsync("report", new ScheduleDefinition
            {
                Name = $"{prefix}-{i}",
                Cron = "* * * * * ?",
                StartAt = start,
                EndAt = start + TimeSpan.FromSeconds(fires - 0.5),
            });
        }
        async Task<int> RunsAsync() =>
            (await scheduler.RunsAsync()).Count(r => r.Schedule!.StartsWith($"report/{prefix}-", StringComparison.Ordinal));
        var deadline = start + TimeSpan.FromSeconds(fires + 15);
        while (await RunsAsync() < schedules * fires && DateTimeOffset.UtcNow < deadline)
        {
            seen.UnionWith(await QuartzConnectionsAsync());
            await Task.Delay(200);
        }
        Assert.Equal(schedules * fires, await RunsAsync());
        await Task.Delay(TimeSpan.FromSeconds(1)); // the last fires' completions
        seen.UnionWith(await QuartzConnectionsAsync());
        seen.ExceptWith(before);
        return seen;
    }

    /// <summary>Backend process ids of Quartz's connections to the database, by the name the scheduler gives them.</summary>
    private async Task<HashSet<int>> QuartzConnectionsAsync()
    {
        await using var connection = new NpgsqlConnection(database.Options.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("""
            SELECT pid FROM pg_stat_activity
            WHERE datname = current_database() AND application_name = @name
            """, connection);
        command.Parameters.AddWithValue("name", SchedulerServiceCollectionExtensions.QuartzApplicationName);
        var pids = new HashSet<int>();
        await using var rows = await command.ExecuteReaderAsync();
        while (await rows.ReadAsync())
        {
            pids.Add(rows.GetInt32(0));
        }
        return pids;
    }
}
