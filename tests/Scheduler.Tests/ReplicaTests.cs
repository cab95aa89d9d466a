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
}
