using System.Globalization;
using System.Text.Json.Nodes;
using Pipelines.Core.Definitions;
using Pipelines.Core.Runs;
using Pipelines.Scheduler.Schedules;
using Pipelines.Tests;

namespace Pipelines.Scheduler.Tests;

/// <summary>
/// One running scheduler, and schedules created, changed, paused and deleted by another process on
/// the same database (a host with only the ScheduleService, as the API is).
/// </summary>
public sealed class FiringTests(ScratchDatabase database) : IClassFixture<ScratchDatabase>
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(15);

    [ServiceFact]
    public async Task every_second_schedule_starts_a_run_each_second_recording_schedule_and_fire_time()
    {
        var catalog = SchedulerTestHost.Catalog(Pipelines.ReportWith("""
                  - name: every-second
                    cron: "* * * * * ?"
                    payload: { day: "2026-03-01" }
            """));
        await using var scheduler = await SchedulerTestHost.StartAsync(catalog, database.Options);

        var runs = await scheduler.WaitForRunsAsync("report/every-second", runs => runs.Count >= 4, Patience);
        await scheduler.StopAsync();

        Assert.All(runs, run =>
        {
            Assert.Equal(RunTriggers.Schedule, run.Trigger);
            Assert.Equal("report", run.Pipeline);
            Assert.Equal(0, run.FireTime!.Value.Millisecond);
            Assert.Equal($"schedule:report/every-second:{run.FireTime.Value.UtcDateTime.ToString("O", CultureInfo.InvariantCulture)}", run.IdempotencyKey);
            Assert.Equal("2026-03-01", JsonNode.Parse(run.Input)!["day"]!.GetValue<string>());
            // Fires are recorded ahead of their time; runs never start before it.
            Assert.InRange(run.CreatedAt - run.FireTime.Value, TimeSpan.Zero, TimeSpan.FromSeconds(1));
        });
        var fireTimes = runs.Select(r => r.FireTime!.Value).ToList();
        Assert.All(fireTimes.Zip(fireTimes.Skip(1)), pair => Assert.Equal(TimeSpan.FromSeconds(1), pair.Second - pair.First));
    }

    [ServiceFact]
    public async Task schedule_created_by_another_process_fires_within_a_second_of_its_first_due_time()
    {
        var catalog = SchedulerTestHost.Catalog(Pipelines.Report);
        await using var scheduler = await SchedulerTestHost.StartAsync(catalog, database.Options);
        await using var api = await SchedulerTestHost.StartAsync(catalog, database.Options, fires: false);
        // Due two seconds on: later than the running scheduler's next poll, so it should fire on time.
        var due = DateTimeOffset.FromUnixTimeSeconds(DateTimeOffset.UtcNow.ToUnixTimeSeconds() + 2);

        var created = await api.Schedules.CreateAsync("report", new ScheduleDefinition { Name = "from-api", Cron = "* * * * * ?", StartAt = due });

        Assert.Equal(due, created.NextFireTimes[0]);
        Assert.Equal(ScheduleSource.Api, created.Source);
        var first = (await scheduler.WaitForRunsAsync("report/from-api", runs => runs.Count >= 1, Patience))[0];
        Assert.Equal(due, first.FireTime);
        Assert.InRange(first.CreatedAt - due, TimeSpan.Zero, TimeSpan.FromSeconds(1));
    }

    [ServiceFact]
    public async Task a_fire_recorded_ahead_of_its_time_starts_its_run_at_the_time_unless_the_schedule_is_paused_before()
    {
        var key = new ScheduleKey("report", "ahead");
        var kept = new ScheduleKey("report", "kept");
        var catalog = SchedulerTestHost.Catalog(Pipelines.Report);
        var log = new LogSink();
        // 900 ms ahead (the most under the 1 s poll interval), so that the test can pause between the record and the time.
        await using var scheduler = await SchedulerTestHost.StartAsync(catalog, database.Options, options: o => o.FireAhead = TimeSpan.FromMilliseconds(900), log: log);
        await using var api = await SchedulerTestHost.StartAsync(catalog, database.Options, fires: false);
        await api.Schedules.CreateAsync("report", new ScheduleDefinition { Name = key.Name, Cron = "*/2 * * * * ?" });
        await api.Schedules.CreateAsync("report", new ScheduleDefinition { Name = kept.Name, Cron = "*/2 * * * * ?" });

        // Not the first two fires: the scheduler finds the new schedule at its next poll, and may take it
        // only at the poll after, too late to record the fire due then ahead of its time.
        var (due, beforeTime) = await FireSeenAheadAsync(scheduler, key, DateTimeOffset.UtcNow + TimeSpan.FromSeconds(4));
        var run = (await scheduler.WaitForRunsAsync(key.ToString(), runs => runs.Any(r => r.FireTime == due), Patience)).Single(r => r.FireTime == due);

        Assert.DoesNotContain(beforeTime, r => r.FireTime == due);
        Assert.True(run.CreatedAt >= due, $"the run of the fire due at {due:O} started at {run.CreatedAt:O}");

        var (next, pausedAt) = (due, DateTimeOffset.MaxValue);
        for (var attempt = 1; attempt <= 3 && pausedAt >= next; attempt++)
        {
            if (attempt > 1)
            {
                // The pause came only at or after the fire's time, so it may rightly start its run: try the next fire.
                await api.Schedules.ResumeAsync(key);
            }
            (next, _) = await FireSeenAheadAsync(scheduler, key, next);
            await api.Schedules.PauseAsync(key);
            pausedAt = DateTimeOffset.UtcNow;
        }
        var untilAfterNext = next + TimeSpan.FromSeconds(1) - DateTimeOffset.UtcNow;
        await Task.Delay(untilAfterNext > TimeSpan.Zero ? untilAfterNext : TimeSpan.Zero);

        Assert.True(pausedAt < next, $"the pause ended at {pausedAt:O}, after the fire it was to withdraw ({next:O})");
        Assert.DoesNotContain(await scheduler.RunsAsync(key.ToString()), r => r.FireTime == next);
        Assert.Contains(log.Events, e => e.Id.Id == 5014 && e.Message.Contains($"{key} fire for {next:O} withdrawn", StringComparison.Ordinal));
        // The schedule due at the same time and not paused still starts its run.
        Assert.Contains(await scheduler.RunsAsync(kept.ToString()), r => r.FireTime == next);
        Assert.DoesNotContain(log.Events, e => e.Id.Id == 5014 && e.Message.Contains($"{kept} fire", StringComparison.Ordinal));
    }

    /// <summary>
    /// The first fire of <paramref name="key"/> after <paramref name="after"/> seen recorded ahead of its
    /// time, with the schedule's runs read then, before that time. Under load (CI runs the test projects
    /// side by side) the scheduler may record a fire only at its time, its fallback; the next one is watched then.
    /// </summary>
    private async Task<(DateTimeOffset Due, List<RunRecord> RunsBefore)> FireSeenAheadAsync(SchedulerTestHost scheduler, ScheduleKey key, DateTimeOffset after)
    {
        var late = new List<string>();
        for (var fire = 0; fire < 5; fire++)
        {
            var (due, _) = await database.FireRecordedAsync(key.ToString(), after, Patience);
            var runs = await scheduler.RunsAsync(key.ToString());
            var readAt = DateTimeOffset.UtcNow;
            if (readAt < due)
            {
                return (due, runs);
            }
            late.Add($"due {due:HH:mm:ss.fff}, seen {readAt:HH:mm:ss.fff}");
            after = due;
        }
        Assert.Fail($"none of five fires of {key} was seen recorded ahead of its time: {string.Join("; ", late)}");
        return default;
    }

    [ServiceFact]
    public async Task a_schedule_created_in_the_scheduler_process_due_before_the_fires_it_waits_to_record_is_recorded_before_its_time()
    {
        var catalog = SchedulerTestHost.Catalog(Pipelines.Report);
        await using var scheduler = await SchedulerTestHost.StartAsync(catalog, database.Options, options: o => o.FireAhead = TimeSpan.FromMilliseconds(900));
        await scheduler.Schedules.CreateAsync("report", new ScheduleDefinition { Name = "waited-for", Cron = "*/5 * * * * ?" });

        // The replica takes the fire due at T up to 1.9 s ahead and waits until T - 0.9 s to record it.
        // While it waits, a schedule due at T - 1 s is created in its process.
        DateTimeOffset due;
        while (true)
        {
            if (await database.TakenFireAsync("report/waited-for") is { } taken && taken - DateTimeOffset.UtcNow > TimeSpan.FromSeconds(1.3))
            {
                due = taken - TimeSpan.FromSeconds(1);
                break;
            }
            await Task.Delay(10);
        }
        await scheduler.Schedules.CreateAsync("report", new ScheduleDefinition { Name = "sooner", Cron = "* * * * * ?", StartAt = due });
        var (recorded, seenAt) = await database.FireRecordedAsync("report/sooner", due - TimeSpan.FromTicks(1), Patience);

        Assert.Equal(due, recorded);
        Assert.True(seenAt < due, $"the fire due at {due:O} was first seen recorded at {seenAt:O}: the wait for the other schedule's fire held it up");
    }

    [ServiceFact]
    public async Task paused_schedule_stops_firing_and_resumes_without_making_up_the_pause()
    {
        var key = new ScheduleKey("report", "paused");
        await using var processes = await FiringFromAnotherProcessAsync(new ScheduleDefinition { Name = key.Name, Cron = "* * * * * ?" });
        var (scheduler, api) = (processes.Scheduler, processes.Api);

        var paused = await api.Schedules.PauseAsync(key);
        var pausedAt = DateTimeOffset.UtcNow;
        Assert.Equal(ScheduleState.Paused, paused.State);
        Assert.False(paused.Definition.Enabled);
        Assert.Empty(paused.NextFireTimes);
        // A fire the running scheduler had already taken before the pause reached it ends within the poll interval.
        await Task.Delay(TimeSpan.FromSeconds(4));
        var duringPause = await scheduler.RunsAsync(key.ToString());
        Assert.DoesNotContain(duringPause, r => r.FireTime > pausedAt + TimeSpan.FromSeconds(1));

        // The first fire after the resume may be due before the call returns: the pause ends when it is asked to.
        var resumingAt = DateTimeOffset.UtcNow;
        var resumed = await api.Schedules.ResumeAsync(key);
        Assert.Equal(ScheduleState.Active, resumed.State);
        var after = await scheduler.WaitForRunsAsync(key.ToString(), runs => runs.Count > duringPause.Count, Patience);
        Assert.DoesNotContain(after, r => r.FireTime > pausedAt + TimeSpan.FromSeconds(1) && r.FireTime < resumingAt);
    }

    [ServiceFact]
    public async Task deleted_schedule_stops_firing()
    {
        var key = new ScheduleKey("report", "deleted");
        await using var processes = await FiringFromAnotherProcessAsync(new ScheduleDefinition { Name = key.Name, Cron = "* * * * * ?" });
        var (scheduler, api) = (processes.Scheduler, processes.Api);

        await api.Schedules.DeleteAsync(key);
        var deletedAt = DateTimeOffset.UtcNow;
        await Task.Delay(TimeSpan.FromSeconds(4));

        Assert.DoesNotContain(await scheduler.RunsAsync(key.ToString()), r => r.FireTime > deletedAt + TimeSpan.FromSeconds(1));
        Assert.Null(await api.Schedules.DescribeAsync(key));
        await Assert.ThrowsAsync<ScheduleNotFoundException>(() => api.Schedules.DeleteAsync(key));
    }

    [ServiceFact]
    public async Task schedule_updated_by_another_process_fires_with_its_new_payload()
    {
        var key = new ScheduleKey("report", "updated");
        await using var processes = await FiringFromAnotherProcessAsync(new ScheduleDefinition { Name = key.Name, Cron = "* * * * * ?", Payload = new JsonObject { ["day"] = "old" } });
        var (scheduler, api) = (processes.Scheduler, processes.Api);

        var updated = await api.Schedules.UpdateAsync(key, new ScheduleDefinition { Cron = "*/2 * * * * ?", Timezone = "Europe/Berlin", Payload = new JsonObject { ["day"] = "new" } });

        Assert.Equal("*/2 * * * * ?", updated.Definition.Cron);
        Assert.Equal("Europe/Berlin", updated.Definition.Timezone);
        var runs = await scheduler.WaitForRunsAsync(key.ToString(), runs => runs.Any(r => r.Input.Contains("new", StringComparison.Ordinal)), Patience);
        var firstNew = runs.First(r => r.Input.Contains("new", StringComparison.Ordinal));
        Assert.Equal(0, firstNew.FireTime!.Value.Second % 2);
    }

    [ServiceFact]
    public async Task create_refuses_a_bad_schedule_naming_each_field_and_a_duplicate_name()
    {
        var catalog = SchedulerTestHost.Catalog(Pipelines.Report);
        await using var api = await SchedulerTestHost.StartAsync(catalog, database.Options, fires: false);

        var invalid = await Assert.ThrowsAsync<InvalidScheduleException>(() => api.Schedules.CreateAsync("report", new ScheduleDefinition
        {
            Name = "bad",
            Cron = "0 25 * * *",
            Timezone = "Europe/Berln",
            Payload = new JsonObject { ["day"] = 3 },
        }));

        Assert.Equal(["cron", "timezone", "payload.day"], invalid.Problems.Select(p => p.Field));
        Assert.StartsWith("schedule 'report/bad' is invalid: cron: invalid cron expression '0 25 * * *'", invalid.Message, StringComparison.Ordinal);
        Assert.Contains("timezone: unknown time zone 'Europe/Berln'", invalid.Message, StringComparison.Ordinal);
        Assert.Contains("did you mean 'Europe/Berlin'?", invalid.Message, StringComparison.Ordinal);
        Assert.Contains("payload.day: parameter 'day' must be a string, got 3", invalid.Message, StringComparison.Ordinal);

        await api.Schedules.CreateAsync("report", new ScheduleDefinition { Name = "twice", Cron = "0 3 * * *", Enabled = false });
        await Assert.ThrowsAsync<ScheduleAlreadyExistsException>(() => api.Schedules.CreateAsync("report", new ScheduleDefinition { Name = "twice", Cron = "0 4 * * *" }));
    }

    /// <summary>A running scheduler, and another process that created <paramref name="schedule"/>, once its first run has started.</summary>
    private async Task<TwoProcesses> FiringFromAnotherProcessAsync(ScheduleDefinition schedule)
    {
        var catalog = SchedulerTestHost.Catalog(Pipelines.Report);
        var processes = new TwoProcesses(
            await SchedulerTestHost.StartAsync(catalog, database.Options),
            await SchedulerTestHost.StartAsync(catalog, database.Options, fires: false));
        await processes.Api.Schedules.CreateAsync("report", schedule);
        await processes.Scheduler.WaitForRunsAsync($"report/{schedule.Name}", runs => runs.Count >= 1, Patience);
        return processes;
    }

    private sealed record TwoProcesses(SchedulerTestHost Scheduler, SchedulerTestHost Api) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            await Api.DisposeAsync();
            await Scheduler.DisposeAsync();
        }
    }
}
