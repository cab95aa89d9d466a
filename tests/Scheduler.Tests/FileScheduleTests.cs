using Pipelines.Core.Definitions;
using Pipelines.Scheduler.Schedules;
using Pipelines.Tests;

namespace Pipelines.Scheduler.Tests;

/// <summary>Schedules declared in the definition file, upserted each time a scheduler starts.</summary>
public sealed class FileScheduleTests(ScratchDatabase database) : IClassFixture<ScratchDatabase>
{
    [ServiceFact]
    public async Task file_schedules_are_upserted_at_start_up_and_never_overwrite_a_schedule_changed_through_the_api()
    {
        var first = SchedulerTestHost.Catalog(Pipelines.ReportWith("""
                  - name: nightly
                    cron: "0 2 * * *"
                    timezone: Europe/Berlin
                  - name: hourly
                    cron: "0 * * * *"
                  - name: dropped
                    cron: "0 4 * * *"
                  - name: disabled
                    cron: "0 5 * * *"
                    enabled: false
            """));
        await using (var scheduler = await SchedulerTestHost.StartAsync(first, database.Options))
        {
            var listed = (await scheduler.Schedules.ListAsync("report", limit: 100)).Schedules;
            Assert.Equal(["disabled", "dropped", "hourly", "nightly"], listed.Select(s => s.Key.Name));
            Assert.All(listed, s => Assert.Equal(ScheduleSource.File, s.Source));
            Assert.Equal(ScheduleState.Paused, listed.Single(s => s.Key.Name == "disabled").State);
            Assert.Equal("0 2 * * *", listed.Single(s => s.Key.Name == "nightly").Definition.Cron);

            await scheduler.Schedules.UpdateAsync(new ScheduleKey("report", "hourly"), new ScheduleDefinition { Cron = "30 * * * *" });
            await scheduler.Schedules.CreateAsync("report", new ScheduleDefinition { Name = "adhoc", Cron = "0 6 * * *" });
        }

        // The file changes the API-updated schedule, drops one and changes another.
        var second = SchedulerTestHost.Catalog(Pipelines.ReportWith("""
                  - name: nightly
                    cron: "0 3 * * *"
                    timezone: Europe/Berlin
                  - name: hourly
                    cron: "15 * * * *"
                  - name: disabled
                    cron: "0 5 * * *"
                    enabled: false
            """));
        await using (var scheduler = await SchedulerTestHost.StartAsync(second, database.Options))
        {
            var listed = (await scheduler.Schedules.ListAsync(pipeline: null, limit: 100)).Schedules.ToDictionary(s => s.Key.Name);
            Assert.Equal(["adhoc", "disabled", "hourly", "nightly"], listed.Keys);
            Assert.Equal("0 3 * * *", listed["nightly"].Definition.Cron);
            Assert.Equal(ScheduleSource.File, listed["nightly"].Source);
            Assert.Equal("30 * * * *", listed["hourly"].Definition.Cron);
            Assert.Equal(ScheduleSource.Api, listed["hourly"].Source);
            Assert.Equal(ScheduleSource.Api, listed["adhoc"].Source);
            var unchanged = await scheduler.Schedules.SyncFileSchedulesAsync();
            Assert.Equal(new FileSyncResult(Created: 0, Updated: 0, Unchanged: 2, Removed: 0, KeptFromApi: 1), unchanged);
        }
    }

    [ServiceFact]
    public async Task an_unchanged_file_schedule_keeps_its_pause_across_a_restart()
    {
        var catalog = SchedulerTestHost.Catalog(Pipelines.ReportWith("""
                  - name: kept-paused
                    cron: "0 2 * * *"
            """));
        var key = new ScheduleKey("report", "kept-paused");
        await using (var scheduler = await SchedulerTestHost.StartAsync(catalog, database.Options))
        {
            await scheduler.Schedules.PauseAsync(key);
        }
        await using (var scheduler = await SchedulerTestHost.StartAsync(catalog, database.Options))
        {
            var described = await scheduler.Schedules.DescribeAsync(key);
            Assert.Equal(ScheduleState.Paused, described!.State);
            Assert.Equal(ScheduleSource.File, described.Source);
        }
    }

    [ServiceFact]
    public async Task a_schedule_whose_pipeline_left_the_file_logs_each_fire_it_cannot_start()
    {
        var before = SchedulerTestHost.Catalog(Pipelines.Report + """

              cleanup:
                steps:
                  - name: sweep
                    handler: demo.sweep
            """);
        await using (var api = await SchedulerTestHost.StartAsync(before, database.Options, fires: false))
        {
            await api.Schedules.CreateAsync("cleanup", new ScheduleDefinition { Name = "orphan", Cron = "* * * * * ?" });
        }

        var log = new LogSink();
        await using var scheduler = await SchedulerTestHost.StartAsync(SchedulerTestHost.Catalog(Pipelines.Report), database.Options, log: log);
        var deadline = DateTimeOffset.UtcNow.AddSeconds(10);
        while (!log.Events.Any(e => e.Id.Id == 5008) && DateTimeOffset.UtcNow < deadline)
        {
            await Task.Delay(100);
        }

        var refused = Assert.Single(log.Events.Where(e => e.Id.Id == 5008).Take(1));
        Assert.Contains("Schedule cleanup/orphan fire for", refused.Message, StringComparison.Ordinal);
        Assert.Contains("started no run: unknown pipeline 'cleanup'", refused.Message, StringComparison.Ordinal);
        Assert.Empty(await scheduler.RunsAsync("cleanup/orphan"));
        Assert.Equal(ScheduleState.Active, (await scheduler.Schedules.DescribeAsync(new ScheduleKey("cleanup", "orphan")))!.State);
    }
}
