using Pipelines.Tests;

namespace Pipelines.Scheduler.Tests;

/// <summary>A scheduler stopped across fire times, then started again.</summary>
public sealed class MisfireTests(ScratchDatabase database) : IClassFixture<ScratchDatabase>
{
    [ServiceFact]
    public async Task restarted_scheduler_fires_a_missed_schedule_once_or_skips_it_by_its_policy_and_logs_the_decision()
    {
        var catalog = SchedulerTestHost.Catalog(Pipelines.ReportWith("""
                  - name: catch-up
                    cron: "* * * * * ?"
                    misfire: fire_once
                  - name: skip
                    cron: "* * * * * ?"
                    misfire: skip
            """));
        static void QuickMisfire(Hosting.SchedulerOptions options) => options.MisfireThreshold = TimeSpan.FromSeconds(2);
        var before = await SchedulerTestHost.StartAsync(catalog, database.Options, options: QuickMisfire);
        await before.WaitForRunsAsync("report/catch-up", runs => runs.Count >= 2, TimeSpan.FromSeconds(15));
        await before.WaitForRunsAsync("report/skip", runs => runs.Count >= 2, TimeSpan.FromSeconds(15));
        await before.DisposeAsync();
        // The first fire the schedule misses is the next fire time the stopped scheduler stored, not its
        // last run plus a second: a scheduler running late on a loaded machine may have applied the
        // misfire policy itself just before it stopped, and moved the schedule on.
        var firstMissed = (await database.StoredTriggerAsync("report/catch-up")).NextFireTime;
        await Task.Delay(TimeSpan.FromSeconds(5));

        var log = new LogSink();
        var restartedAt = DateTimeOffset.UtcNow;
        await using var after = await SchedulerTestHost.StartAsync(catalog, database.Options, options: QuickMisfire, log: log);
        var catchUp = await after.WaitForRunsAsync("report/catch-up", runs => runs.Any(r => r.FireTime > restartedAt + TimeSpan.FromSeconds(1)), TimeSpan.FromSeconds(15));
        var skip = await after.WaitForRunsAsync("report/skip", runs => runs.Any(r => r.FireTime > restartedAt + TimeSpan.FromSeconds(1)), TimeSpan.FromSeconds(15));
        await after.StopAsync();

        static List<DateTimeOffset> FiredForTheGap(List<Core.Runs.RunRecord> runs, DateTimeOffset restartedAt) =>
            [.. runs.Where(r => r.CreatedAt > restartedAt && r.FireTime < restartedAt).Select(r => r.FireTime!.Value)];
        // fire_once: one run, for the first fire missed; skip: none.
        Assert.Equal([firstMissed], FiredForTheGap(catchUp, restartedAt));
        Assert.Empty(FiredForTheGap(skip, restartedAt));
        Assert.Contains(log.Events, e => e.Id.Id == 5003 && e.Message.Contains("report/catch-up", StringComparison.Ordinal) && e.Message.Contains("firing once now", StringComparison.Ordinal));
        Assert.Contains(log.Events, e => e.Id.Id == 5004 && e.Message.Contains("report/skip", StringComparison.Ordinal) && e.Message.Contains("next fire at", StringComparison.Ordinal));
    }
}
