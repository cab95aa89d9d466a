using Pipelines.Core.Runs;
using Pipelines.Scheduler.Schedules;
using Pipelines.Tests;

namespace Pipelines.Scheduler.Tests;

/// <summary>
/// Overlap policies, with run states set by the test: nothing consumes StartRun here, so a run stays
/// pending (unfinished) until the test finishes it.
/// </summary>
public sealed class OverlapTests(ScratchDatabase database) : IClassFixture<ScratchDatabase>
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(15);

    [ServiceFact]
    public async Task overlap_allow_starts_runs_while_earlier_ones_are_unfinished()
    {
        await using var scheduler = await StartAsync("allow");
        var runs = await scheduler.WaitForRunsAsync("report/allow", runs => runs.Count >= 3, Patience);
        Assert.All(runs, r => Assert.Equal(RunState.Pending, r.State));
    }

    [ServiceFact]
    public async Task overlap_skip_drops_fires_until_the_unfinished_run_finishes()
    {
        await using var scheduler = await StartAsync("skip");
        var first = (await scheduler.WaitForRunsAsync("report/skip", runs => runs.Count >= 1, Patience))[0];
        await scheduler.SetStateAsync(first.Id, RunState.Running);
        await Task.Delay(TimeSpan.FromSeconds(3));
        var whileRunning = await scheduler.RunsAsync("report/skip");
        // A fire may have been deciding while the first run was still pending; after that, none.
        Assert.InRange(whileRunning.Count, 1, 2);
        foreach (var run in whileRunning)
        {
            await scheduler.SetStateAsync(run.Id, RunState.Succeeded);
        }

        var after = await scheduler.WaitForRunsAsync("report/skip", runs => runs.Count > whileRunning.Count, Patience);
        Assert.True(after[^1].FireTime > whileRunning[^1].FireTime + TimeSpan.FromSeconds(2));
    }

    [ServiceFact]
    public async Task overlap_queue_holds_fires_and_starts_them_in_order_one_at_a_time()
    {
        await using var scheduler = await StartAsync("queue");
        var key = new ScheduleKey("report", "queue");
        var first = (await scheduler.WaitForRunsAsync(key.ToString(), runs => runs.Count >= 1, Patience))[0];
        await Task.Delay(TimeSpan.FromSeconds(3));
        Assert.Single(await scheduler.RunsAsync(key.ToString()));
        var described = await scheduler.Schedules.DescribeAsync(key);
        Assert.InRange(described!.QueuedFires, 1, 4);

        await scheduler.SetStateAsync(first.Id, RunState.Succeeded);
        var runs = await scheduler.WaitForRunsAsync(key.ToString(), runs => runs.Count == 2, Patience);
        // The oldest held-back fire starts, with its own fire time; the next waits for it.
        Assert.Equal(first.FireTime + TimeSpan.FromSeconds(1), runs[1].FireTime);
        await Task.Delay(TimeSpan.FromSeconds(2));
        Assert.Equal(2, (await scheduler.RunsAsync(key.ToString())).Count);

        await scheduler.SetStateAsync(runs[1].Id, RunState.Failed);
        runs = await scheduler.WaitForRunsAsync(key.ToString(), runs => runs.Count == 3, Patience);
        Assert.Equal(first.FireTime + TimeSpan.FromSeconds(2), runs[2].FireTime);
    }

    private Task<SchedulerTestHost> StartAsync(string overlap) =>
        SchedulerTestHost.StartAsync(SchedulerTestHost.Catalog(Pipelines.ReportWith($"""
                  - name: {overlap}
                    cron: "* * * * * ?"
                    overlap: {overlap}
            """)), database.Options);
}
