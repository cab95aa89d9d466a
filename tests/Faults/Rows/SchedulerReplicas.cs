using System.Collections.Concurrent;
using System.Globalization;
using Pipelines.Faults.Engine;
using Pipelines.Faults.Report;

namespace Pipelines.Faults.Rows;

/// <summary>
/// Fault 6: two scheduler replicas (processes) on one database, 20 schedules every 5 s; every 2 minutes
/// the replica holding the coming fires (taken, or recorded ahead of their time) is killed (SIGKILL)
/// and restarted, and in between the one holding them then is paused (SIGSTOP) for 20 s. Every fire
/// must start exactly one run: a killed replica's fires are taken over by the other, a paused one's
/// repeated fires are turned away by the idempotency key.
/// </summary>
internal sealed class SchedulerReplicas : IRow
{
    public string Id => "replicas";

    public string Title => "6. two scheduler replicas, kills and SIGSTOP";

    public RowKind Kind => RowKind.Fault;

    public string Bar => "0 double runs, 0 missed";

    public async Task<RowResult> RunAsync(Cluster cluster, FaultOptions options, CancellationToken cancellationToken)
    {
        var duration = options.Pick(TimeSpan.FromMinutes(10), TimeSpan.FromSeconds(80));
        var every = options.Pick(TimeSpan.FromMinutes(2), TimeSpan.FromSeconds(40));
        var restartAfter = TimeSpan.FromSeconds(10);
        var pause = TimeSpan.FromSeconds(20);

        await using var deployment = await SchedulerRows.DeployAsync(cluster, "replicas");
        var events = new ConcurrentQueue<SchedulerEvent>();
        var replicas = new[] { SchedulerRows.StartReplica(deployment, "scheduler-a", events), SchedulerRows.StartReplica(deployment, "scheduler-b", events) };
        var all = new List<ReplicaProcess>(replicas);
        var from = await SchedulerRows.WaitForFiringAsync(deployment);
        var log = new List<string>();
        cluster.Say($"replicas: 2 replicas for {duration.TotalSeconds:0} s; a kill every {every.TotalSeconds:0} s, a {pause.TotalSeconds:0} s SIGSTOP half-way between");
        var start = DateTimeOffset.UtcNow;
        var end = start + duration;
        var round = 0;
        while (DateTimeOffset.UtcNow + every <= end + TimeSpan.FromSeconds(1))
        {
            // Kill one replica at +every/2 (it restarts 10 s later), pause the other at +every.
            await Task.Delay(every / 2 - SchedulerRows.Lead, cancellationToken);
            await SchedulerRows.BeforeNextFireAsync(cancellationToken);
            var (victim, held) = await SchedulerRows.HolderOfNextFiresAsync(deployment, replicas, otherwise: round % 2);
            var killed = replicas[victim];
            killed.Kill();
            log.Add($"+{(DateTimeOffset.UtcNow - start).TotalSeconds:0}s SIGKILL {killed.Name} (holding {held} coming fires)");
            await Task.Delay(restartAfter, cancellationToken);
            var restarted = DateTimeOffset.UtcNow;
            replicas[victim] = SchedulerRows.StartReplica(deployment, killed.Name, events);
            all.Add(replicas[victim]);
            // The pause must leave one replica firing: pausing the other while this one is still starting
            // (on a busy machine that took 50 s) stops every scheduler, which is the misfire policy's case
            // (row 5), not a failover.
            await replicas[victim].Ready.WaitAsync(TimeSpan.FromMinutes(3), cancellationToken);
            log.Add($"+{(restarted - start).TotalSeconds:0}s restarted {killed.Name} (its scheduler started {RowResult.Seconds(DateTimeOffset.UtcNow - restarted)} later)");
            var untilPause = every / 2 - restartAfter - SchedulerRows.Lead - (DateTimeOffset.UtcNow - restarted);
            await Task.Delay(untilPause > TimeSpan.Zero ? untilPause : TimeSpan.Zero, cancellationToken);
            await SchedulerRows.BeforeNextFireAsync(cancellationToken);
            var (holder, heldByPaused) = await SchedulerRows.HolderOfNextFiresAsync(deployment, replicas, otherwise: 1 - victim);
            var paused = replicas[holder];
            await paused.PauseAsync();
            log.Add($"+{(DateTimeOffset.UtcNow - start).TotalSeconds:0}s SIGSTOP {paused.Name} (holding {heldByPaused} coming fires)");
            await Task.Delay(pause, cancellationToken);
            await paused.ResumeAsync();
            log.Add($"+{(DateTimeOffset.UtcNow - start).TotalSeconds:0}s SIGCONT {paused.Name}");
            round++;
        }
        var rest = end - DateTimeOffset.UtcNow;
        if (rest > TimeSpan.Zero)
        {
            await Task.Delay(rest, cancellationToken);
        }
        var to = DateTimeOffset.UtcNow - SchedulerRows.Period;
        await Task.Delay(TimeSpan.FromSeconds(20), cancellationToken);
        foreach (var replica in all)
        {
            replica.Dispose();
        }

        var (audit, runs, drained) = await SchedulerRows.AuditAsync(deployment, from, to, events);
        var fired = events.Where(e => e.Id == 5001).GroupBy(e => e.Replica).Select(g => $"{g.Key} {g.Count()}");

        return RowResult.Of(this) with
        {
            Passed = audit.DoubleRuns == 0 && audit.Missed == 0 && runs.Lost == 0 && runs.DuplicateEffects == 0,
            Runs = runs,
            Recovery = $"fire lateness p99 {RowResult.Seconds(audit.LatenessAt(0.99))}, max {RowResult.Seconds(audit.LatenessAt(1))}",
            Schedule = string.Create(CultureInfo.InvariantCulture,
                $"20 schedules `*/5 * * * * ?` (misfire `fire_once`, threshold 10 s; check-in every 1 s, failed out 4 s overdue) on 2 scheduler replica processes for {duration.TotalMinutes:0.#} min; each {every.TotalSeconds:0} s the replica holding the coming fires SIGKILLed {SchedulerRows.Lead.TotalMilliseconds:0} ms before their time and restarted {restartAfter.TotalSeconds:0} s later, then, once its scheduler had started, the one holding the fires then SIGSTOPped for {pause.TotalSeconds:0} s, also just before their time; runs of `tick` on 1 worker; observed {from:HH:mm:ss}-{to:HH:mm:ss} UTC; drained in {RowResult.Seconds(drained)}."),
            Notes =
            [
                DatabaseRestart.Fires(audit),
                $"runs started per replica process (event 5001): {string.Join(", ", fired)}",
                $"fires recorded ahead of their time by a replica that then stopped, run again by the other (event 5013): {events.Count(e => e.Id == 5013)}",
                $"faults: {string.Join("; ", log)}",
                .. audit.Examples,
            ],
        };
    }
}
