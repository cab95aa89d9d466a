using System.Collections.Concurrent;
using Pipelines.Faults.Engine;
using Pipelines.Faults.Recording;
using Pipelines.Faults.Report;

namespace Pipelines.Faults.Rows;

/// <summary>
/// A minimal reproduction, not a row of the published table (<c>--rows repro-pause</c>): two scheduler
/// replicas, 20 schedules every 5 s, no kills — only a 20 s SIGSTOP of a replica, 300 ms before a fire. The other replica takes the paused one's acquired triggers over and
/// fires them once under the misfire policy; when the paused one resumes, it fires its stale triggers
/// (turned away by the idempotency key, event 5002) and the fire due just then is lost for every
/// schedule, with no misfire decision logged. Whether a pause hits is chance (which replica holds the
/// coming fires, and when the other re-takes them), so the replicas are paused in turn until a fire is
/// lost, at most 8 times.
/// </summary>
internal sealed class ReproPausedReplica : IRow
{
    public string Id => "repro-pause";

    public string Title => "repro: a paused scheduler replica resumes";

    public RowKind Kind => RowKind.Fault;

    public string Bar => "0 double runs, 0 missed";

    public async Task<RowResult> RunAsync(Cluster cluster, FaultOptions options, CancellationToken cancellationToken)
    {
        await using var deployment = await SchedulerRows.DeployAsync(cluster, "repro-pause");
        var events = new ConcurrentQueue<SchedulerEvent>();
        using var a = SchedulerRows.StartReplica(deployment, "scheduler-a", events);
        using var b = SchedulerRows.StartReplica(deployment, "scheduler-b", events);
        var from = await SchedulerRows.WaitForFiringAsync(deployment);
        var pauses = new List<string>();
        // Which replica holds the coming fires, and whether the other has re-taken the next one when the
        // paused one resumes, is chance: pause them in turn until a fire is lost, at most 8 times.
        for (var round = 0; round < 8; round++)
        {
            await Task.Delay(TimeSpan.FromSeconds(10), cancellationToken);
            await SchedulerRows.BeforeNextFireAsync(cancellationToken);
            var victim = round % 2 == 0 ? a : b;
            await victim.PauseAsync();
            pauses.Add($"{victim.Name} paused at {DateTimeOffset.UtcNow:HH:mm:ss.fff} UTC");
            await Task.Delay(TimeSpan.FromSeconds(20), cancellationToken);
            await victim.ResumeAsync();
            await Task.Delay(TimeSpan.FromSeconds(10), cancellationToken);
            var sofar = await ScheduleAudit.ComputeAsync(deployment.Store, SchedulerRows.Pipeline, SchedulerRows.Schedules, SchedulerRows.Period, from, DateTimeOffset.UtcNow - SchedulerRows.Period, [.. events]);
            if (sofar.MissedBeyondPolicy > 0)
            {
                break;
            }
        }
        await Task.Delay(TimeSpan.FromSeconds(15), cancellationToken);
        var to = DateTimeOffset.UtcNow - SchedulerRows.Period;
        await Task.Delay(TimeSpan.FromSeconds(15), cancellationToken);
        var (audit, runs, _) = await SchedulerRows.AuditAsync(deployment, from, to, events);
        return RowResult.Of(this) with
        {
            Passed = audit.Missed == audit.MissedCovered && audit.DoubleRuns == 0,
            Runs = runs,
            Schedule = $"2 replicas, 20 schedules `*/5 * * * * ?`; a replica SIGSTOPped {SchedulerRows.Lead.TotalMilliseconds:0} ms before a fire for 20 s, in turn, until a fire was lost: {string.Join("; ", pauses)}.",
            Notes = [DatabaseRestart.Fires(audit), .. audit.Examples],
        };
    }
}
