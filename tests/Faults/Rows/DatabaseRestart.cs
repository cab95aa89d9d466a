using System.Collections.Concurrent;
using System.Globalization;
using Pipelines.Faults.Engine;
using Pipelines.Faults.Recording;
using Pipelines.Faults.Report;

namespace Pipelines.Faults.Rows;

/// <summary>
/// Fault 5: PostgreSQL (run store and Quartz job store alike) stopped with <c>-m immediate</c> — every
/// backend aborted, crash recovery on the next start — while 20 schedules fire every 5 s and their runs
/// execute. Fires that fall in the outage must run late, or be replaced by the misfire policy; none may
/// vanish, and every run started must finish.
/// </summary>
internal sealed class DatabaseRestart : IRow
{
    public string Id => "postgres";

    public string Title => "5. PostgreSQL restarted (`-m immediate`), 20 schedules every 5 s";

    public RowKind Kind => RowKind.Fault;

    public string Bar => "0 missed fires beyond the misfire policy; recovery time";

    public async Task<RowResult> RunAsync(Cluster cluster, FaultOptions options, CancellationToken cancellationToken)
    {
        // (after the previous event, how long down); full: an immediate restart, then one longer than the 10 s misfire threshold.
        (TimeSpan After, TimeSpan Down)[] crashes = options.Pick<(TimeSpan, TimeSpan)[]>(
            [(TimeSpan.FromSeconds(30), TimeSpan.Zero), (TimeSpan.FromSeconds(45), TimeSpan.FromSeconds(20))],
            [(TimeSpan.FromSeconds(15), TimeSpan.FromSeconds(5))]);
        var tail = options.Pick(TimeSpan.FromSeconds(45), TimeSpan.FromSeconds(25));

        await using var deployment = await SchedulerRows.DeployAsync(cluster, "postgres");
        var events = new ConcurrentQueue<SchedulerEvent>();
        using var replica = SchedulerRows.StartReplica(deployment, "scheduler-1", events);
        var from = await SchedulerRows.WaitForFiringAsync(deployment);
        cluster.Say($"postgres: 20 schedules firing; {crashes.Length} crash(es) of PostgreSQL");

        var recoveries = new List<string>();
        var recoveryTimes = new List<TimeSpan>();
        foreach (var (after, down) in crashes)
        {
            await Task.Delay(after, cancellationToken);
            var crashed = DateTimeOffset.UtcNow;
            await cluster.Postgres.CrashAsync();
            await Task.Delay(down, cancellationToken);
            var restart = await cluster.Postgres.StartAgainAsync();
            var up = DateTimeOffset.UtcNow;
            var (stored, finished) = await SchedulerRows.FirstAfterAsync(deployment, up, TimeSpan.FromSeconds(60));
            recoveryTimes.Add(finished ?? TimeSpan.FromSeconds(60));
            recoveries.Add(string.Create(CultureInfo.InvariantCulture,
                $"crash at {crashed:HH:mm:ss} UTC, down {down.TotalSeconds:0} s, server back after {RowResult.Seconds(restart)} (crash recovery included); first run stored {RowResult.Seconds(stored)} and first run finished {RowResult.Seconds(finished)} after it accepted connections"));
            cluster.Say($"postgres: {recoveries[^1]}");
        }
        await Task.Delay(tail, cancellationToken);
        var to = DateTimeOffset.UtcNow - SchedulerRows.Period;
        // Fires due just before the end get the time to be stored.
        await Task.Delay(TimeSpan.FromSeconds(15), cancellationToken);
        replica.Kill();

        var (audit, runs, drained) = await SchedulerRows.AuditAsync(deployment, from, to, events);

        return RowResult.Of(this) with
        {
            Passed = audit.MissedBeyondPolicy == 0 && audit.DoubleRuns == 0 && runs.Lost == 0 && runs.DuplicateEffects == 0,
            Runs = runs,
            Recovery = $"first run finished max {RowResult.Seconds(recoveryTimes.Max())} after restart",
            Schedule = string.Create(CultureInfo.InvariantCulture,
                $"20 schedules `*/5 * * * * ?` (misfire `fire_once`, threshold 10 s) on one scheduler replica process, runs of `tick` (one `demo.echo` step) on 1 worker, coordinator in the harness; all on the one PostgreSQL. {string.Join("; ", crashes.Select(c => $"after {c.After.TotalSeconds:0} s `pg_ctl stop -m immediate`, down {c.Down.TotalSeconds:0} s, start"))}; observed {from:HH:mm:ss}-{to:HH:mm:ss} UTC; drained in {RowResult.Seconds(drained)}."),
            Notes =
            [
                Fires(audit),
                .. recoveries,
                .. audit.Examples,
            ],
        };
    }

    internal static string Fires(ScheduleAudit audit) => string.Create(CultureInfo.InvariantCulture,
        $"fires: {audit.Expected} expected, {audit.OnTime} ran for their own time (lateness p50 {RowResult.Seconds(audit.LatenessAt(0.5))}, p99 {RowResult.Seconds(audit.LatenessAt(0.99))}, max {RowResult.Seconds(audit.LatenessAt(1))}), {audit.Missed} missed: {audit.MissedCovered} in streaks that a logged misfire decision replaced by one late run (fire once; {audit.MisfireDecisions} decisions logged) and **{audit.MissedBeyondPolicy} beyond the misfire policy**; {audit.DoubleRuns} double runs; {audit.Absorbed} repeated fires turned away by the idempotency key.");
}
