using Npgsql;
using Pipelines.Core.Definitions;
using Pipelines.Scheduler.Schedules;
using Pipelines.Tests;
using Xunit.Abstractions;

namespace Pipelines.Scheduler.Tests;

/// <summary>Two scheduler replicas on one database, as in a deployment with two pods.</summary>
public sealed class ReplicaTests(ScratchDatabase database, ITestOutputHelper output) : IClassFixture<ScratchDatabase>
{
    [ServiceFact]
    public async Task two_replicas_over_sixty_fires_start_exactly_sixty_runs_even_when_one_stops_halfway()
    {
        var catalog = SchedulerTestHost.Catalog(Pipelines.Report);
        LogSink firstLog = new(), secondLog = new();
        await using var first = await SchedulerTestHost.StartAsync(catalog, database.Options, log: firstLog);
        await using var second = await SchedulerTestHost.StartAsync(catalog, database.Options, log: secondLog);
        // Two schedules firing every second for 30 s: fires at start, start+1s, ..., start+29s.
        var start = DateTimeOffset.FromUnixTimeSeconds(DateTimeOffset.UtcNow.ToUnixTimeSeconds() + 3);
        var end = start + TimeSpan.FromSeconds(29.5);
        foreach (var name in new[] { "a", "b" })
        {
            await first.Schedules.CreateAsync("report", new ScheduleDefinition { Name = name, Cron = "* * * * * ?", StartAt = start, EndAt = end });
        }

        var expected = Enumerable.Range(0, 30).Select(i => start + TimeSpan.FromSeconds(i)).ToList();
        var timeout = end - DateTimeOffset.UtcNow + TimeSpan.FromSeconds(10);
        await first.WaitForRunsAsync("report/a", runs => runs.Count >= 15, timeout);
        await second.StopAsync();
        await first.WaitForRunsAsync("report/a", runs => runs.Count >= 30, timeout);
        await first.WaitForRunsAsync("report/b", runs => runs.Count >= 30, TimeSpan.FromSeconds(5));
        // Time for a late duplicate to show itself, had there been one.
        await Task.Delay(TimeSpan.FromSeconds(2));

        var all = await first.RunsAsync();
        Assert.Equal(60, all.Count);
        Assert.Equal(expected, all.Where(r => r.Schedule == "report/a").Select(r => r.FireTime!.Value));
        Assert.Equal(expected, all.Where(r => r.Schedule == "report/b").Select(r => r.FireTime!.Value));
        Assert.Equal(ScheduleState.Ended, (await first.Schedules.DescribeAsync(new ScheduleKey("report", "a")))!.State);
        // Quartz's cluster gave each fire to one replica: the idempotency key never had to stop a second run.
        int Count(LogSink log, int eventId) => log.Events.Count(e => e.Id.Id == eventId);
        output.WriteLine($"runs started: {Count(firstLog, 5001)} by the first replica, {Count(secondLog, 5001)} by the second");
        Assert.Equal(60, Count(firstLog, 5001) + Count(secondLog, 5001));
        Assert.Equal(0, Count(firstLog, 5002) + Count(secondLog, 5002));
    }

    [ServiceFact]
    public async Task a_replica_stopped_after_recording_a_fire_ahead_of_its_time_hands_it_to_the_other_which_runs_it_once()
    {
        var catalog = SchedulerTestHost.Catalog(Pipelines.Report);
        LogSink firstLog = new(), secondLog = new();
        // 900 ms ahead, so that the first replica can be stopped between the record and the time.
        await using var first = await SchedulerTestHost.StartAsync(catalog, database.Options, options: o => o.FireAhead = TimeSpan.FromMilliseconds(900), log: firstLog);
        await first.Schedules.CreateAsync("report", new ScheduleDefinition { Name = "handed-back", Cron = "*/2 * * * * ?" });
        // Not the first fire, which the new schedule may get only after its time.
        var (due, _) = await database.FireRecordedAsync("report/handed-back", DateTimeOffset.UtcNow + TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(15));

        await first.StopAsync();
        var stoppedAt = DateTimeOffset.UtcNow;
        await using var second = await SchedulerTestHost.StartAsync(catalog, database.Options, log: secondLog);
        var runs = await second.WaitForRunsAsync("report/handed-back", runs => runs.Any(r => r.FireTime == due), TimeSpan.FromSeconds(20));

        Assert.True(stoppedAt < due, $"the first replica stopped at {stoppedAt:O}, after the fire due at {due:O}");
        Assert.Single(runs, r => r.FireTime == due);
        Assert.DoesNotContain(firstLog.Events, e => e.Id.Id == 5001 && e.Message.Contains($"fired for {due:O}", StringComparison.Ordinal));
        Assert.Contains(secondLog.Events, e => e.Id.Id == 5013 && e.Message.Contains($"report/handed-back fire for {due:O} is run again", StringComparison.Ordinal));
    }

    /// <summary>
    /// Regression (docs/reliability.md, finding 2): a replica SIGSTOPped after it had taken the coming
    /// fires was failed out by its peer, which took the fires over; resumed, it fired its stale copies
    /// anyway, wrote back a next fire time in the past, and the peer's fire due then was lost.
    /// </summary>
    [ServiceFact]
    public async Task a_replica_failed_out_after_taking_a_fire_does_not_fire_it_nor_touch_the_trigger_and_fires_the_others()
    {
        var log = new LogSink();
        await using var replica = await SchedulerTestHost.StartAsync(SchedulerTestHost.Catalog(Pipelines.Report), database.Options, log: log);
        await replica.Schedules.CreateAsync("report", new ScheduleDefinition { Name = "fenced", Cron = "*/2 * * * * ?" });
        // Due at the same instants and taken together: the fence drops the stale fire only, not its neighbour.
        await replica.Schedules.CreateAsync("report", new ScheduleDefinition { Name = "kept", Cron = "*/2 * * * * ?" });
        await using var connection = new NpgsqlConnection(database.Options.ConnectionString);
        await connection.OpenAsync();

        // What the peer's recovery does to the replica it fails out: deletes its reservation of the fire
        // it took (about a second ahead of its time), and the trigger becomes the peer's to fire.
        DateTimeOffset? taken = null;
        while (taken is null)
        {
            await using var recover = new NpgsqlCommand(
                "DELETE FROM qrtz_fired_triggers WHERE trigger_name = 'report/fenced' AND state = 'ACQUIRED' RETURNING sched_time", connection);
            taken = await recover.ExecuteScalarAsync() is long ticks ? new DateTimeOffset(ticks, TimeSpan.Zero) : null;
            await Task.Delay(taken is null ? 10 : 0);
        }
        var deadline = DateTimeOffset.UtcNow + TimeSpan.FromSeconds(10);
        while (!log.Events.Any(e => e.Id.Id == 5011) && DateTimeOffset.UtcNow < deadline)
        {
            await Task.Delay(50);
        }

        var dropped = Assert.Single(log.Events, e => e.Id.Id == 5011);
        Assert.Contains($"report/fenced fire for {taken.Value:O} not started on this replica", dropped.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(await replica.RunsAsync("report/fenced"), r => r.FireTime == taken);
        Assert.Equal(("ACQUIRED", taken.Value), await database.StoredTriggerAsync("report/fenced"));
        Assert.Contains(await replica.WaitForRunsAsync("report/kept", runs => runs.Any(r => r.FireTime == taken), TimeSpan.FromSeconds(10)), r => r.FireTime == taken);
    }
}
