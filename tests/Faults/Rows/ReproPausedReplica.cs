using System.Collections.Concurrent;
using Pipelines.Faults.Engine;
using Pipelines.Faults.Report;

namespace Pipelines.Faults.Rows;

/// <summary>
/// A minimal reproduction, not a row of the published table (<c>--rows repro-pause</c>): two scheduler
/// replicas, 20 schedules every 5 s, no kills — only a 20 s SIGSTOP of the replica that fired the last
/// fire, 300 ms before the next. The other replica takes the paused one's acquired triggers over and
/// fires them once under the misfire policy; when the paused one resumes, it fires its stale triggers
/// (turned away by the idempotency key, event 5002) and the fire due just then is lost for every
/// schedule, with no misfire decision logged.
/// </summary>
internal sealed class ReproPausedReplica : IRow
{
    private static readonly TimeSpan Lead = TimeSpan.FromMilliseconds(300);

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
        for (var round = 0; round < 2; round++)
        {
            await Task.Delay(TimeSpan.FromSeconds(10), cancellationToken);
            var now = DateTimeOffset.UtcNow;
            var next = new DateTimeOffset(now.UtcTicks - (now.UtcTicks % SchedulerRows.Period.Ticks) + SchedulerRows.Period.Ticks, TimeSpan.Zero);
            await Task.Delay(next - Lead - DateTimeOffset.UtcNow, cancellationToken);
            // The replica that fired the last fire is most likely the one holding the next.
            var last = events.Where(e => e.Id == 5001).MaxBy(e => e.Time);
            var victim = last?.Replica == "scheduler-b" ? b : a;
            await victim.PauseAsync();
            pauses.Add($"{victim.Name} paused at {DateTimeOffset.UtcNow:HH:mm:ss.fff} UTC");
            await Task.Delay(TimeSpan.FromSeconds(20), cancellationToken);
            await victim.ResumeAsync();
        }
        await Task.Delay(TimeSpan.FromSeconds(15), cancellationToken);
        var to = DateTimeOffset.UtcNow - SchedulerRows.Period;
        await Task.Delay(TimeSpan.FromSeconds(15), cancellationToken);
        var (audit, runs, _) = await SchedulerRows.AuditAsync(deployment, from, to, events);
        return RowResult.Of(this) with
        {
            Passed = audit.Missed == audit.MissedCovered && audit.DoubleRuns == 0,
            Runs = runs,
            Schedule = $"2 replicas, 20 schedules `*/5 * * * * ?`; twice, the replica that fired the last fire SIGSTOPped {Lead.TotalMilliseconds:0} ms before the next one, for 20 s: {string.Join("; ", pauses)}.",
            Notes = [DatabaseRestart.Fires(audit), .. audit.Examples],
        };
    }
}
