using Pipelines.Core.Persistence;
using Pipelines.Scheduler.Schedules;

namespace Pipelines.Scheduler.Tests;

/// <summary>The embedded default: the scheduler in the same process, its job store in the run store's SQLite file.</summary>
public sealed class EmbeddedSqliteTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("pipelines-scheduler-").FullName;

    [Fact]
    public async Task every_second_schedule_starts_runs_on_sqlite()
    {
        var database = new RunStoreOptions { Provider = RunStoreProvider.Sqlite, ConnectionString = $"Data Source={Path.Combine(_directory, "pipelines.db")}" };
        await using var scheduler = await SchedulerTestHost.StartAsync(SchedulerTestHost.Catalog(Pipelines.Report), database);

        await scheduler.Schedules.CreateAsync("report", new Core.Definitions.ScheduleDefinition { Name = "embedded", Cron = "* * * * * ?" });

        var runs = await scheduler.WaitForRunsAsync("report/embedded", runs => runs.Count >= 3, TimeSpan.FromSeconds(15));
        Assert.Equal(runs.Count, runs.Select(r => r.FireTime).Distinct().Count());
        Assert.Equal(ScheduleState.Active, (await scheduler.Schedules.DescribeAsync(new ScheduleKey("report", "embedded")))!.State);
    }

    [Fact]
    public async Task overlap_skip_on_sqlite_starts_no_run_while_the_first_is_unfinished()
    {
        var database = new RunStoreOptions { Provider = RunStoreProvider.Sqlite, ConnectionString = $"Data Source={Path.Combine(_directory, "pipelines.db")}" };
        await using var scheduler = await SchedulerTestHost.StartAsync(SchedulerTestHost.Catalog(Pipelines.Report), database);

        await scheduler.Schedules.CreateAsync("report", new Core.Definitions.ScheduleDefinition { Name = "skipping", Cron = "* * * * * ?", Overlap = Core.Definitions.OverlapPolicy.Skip });

        // Nothing consumes StartRun here: the first run stays pending, and every later fire is skipped.
        await scheduler.WaitForRunsAsync("report/skipping", runs => runs.Count >= 1, TimeSpan.FromSeconds(15));
        await Task.Delay(TimeSpan.FromSeconds(3));
        Assert.Single(await scheduler.RunsAsync("report/skipping"));
    }

    public void Dispose()
    {
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        Directory.Delete(_directory, recursive: true);
    }
}
