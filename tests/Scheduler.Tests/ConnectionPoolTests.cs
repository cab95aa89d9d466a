using Npgsql;
using Pipelines.Core.Definitions;
using Pipelines.Core.Persistence;
using Pipelines.Scheduler.Hosting;
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
        var start = DateTimeOffset.FromUnixTimeSeconds(DateTimeOffset.UtcNow.ToUnixTimeSeconds() + 3);
        for (var i = 0; i < Schedules; i++)
        {
            await scheduler.Schedules.CreateAsync("report", new ScheduleDefinition
            {
                Name = $"burst-{i}",
                Cron = "* * * * * ?",
                StartAt = start,
                EndAt = start + TimeSpan.FromSeconds(FiresEach - 0.5),
            });
        }
        var deadline = start + TimeSpan.FromSeconds(FiresEach + 15);
        while ((await scheduler.RunsAsync()).Count < Schedules * FiresEach && DateTimeOffset.UtcNow < deadline)
        {
            await Task.Delay(200);
        }
        Assert.Equal(Schedules * FiresEach, (await scheduler.RunsAsync()).Count);
        await Task.Delay(TimeSpan.FromSeconds(1)); // the last fires' completions

        var opened = await QuartzConnectionsAsync();
        Assert.True(opened.Count >= 4, $"the bursts opened {opened.Count} of Quartz's connections; the test needs several");
        await Task.Delay(TimeSpan.FromSeconds(5));
        var open = await QuartzConnectionsAsync();

        var closed = opened.Except(open).ToList();
        Assert.True(closed.Count == 0, $"{closed.Count} of the {opened.Count} connections the bursts opened were closed while idle");
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
