using System.Collections.Concurrent;
using Microsoft.EntityFrameworkCore;
using Pipelines.Faults.Engine;
using Pipelines.Faults.Recording;
using Pipelines.Faults.Services;

namespace Pipelines.Faults.Rows;

/// <summary>What the scheduler rows share: a deployment with 20 schedules every 5 s, its replicas, and their audit.</summary>
internal static class SchedulerRows
{
    public const string Pipeline = "tick";
    public const int Schedules = 20;
    public static readonly TimeSpan Period = TimeSpan.FromSeconds(5);

    /// <summary>Faults land this long before a fire time, when a replica has most likely taken the coming fires from the store.</summary>
    public static readonly TimeSpan Lead = TimeSpan.FromMilliseconds(300);

    /// <summary>Waits until <see cref="Lead"/> before the next fire time (a multiple of <see cref="Period"/>).</summary>
    public static Task BeforeNextFireAsync(CancellationToken cancellationToken)
    {
        var now = DateTimeOffset.UtcNow;
        var wait = NextFireTime(now) - Lead - now;
        return Task.Delay(wait > TimeSpan.Zero ? wait : wait + Period, cancellationToken);
    }

    /// <summary>The first fire time (a multiple of <see cref="Period"/>) after <paramref name="now"/>.</summary>
    private static DateTimeOffset NextFireTime(DateTimeOffset now) =>
        new(now.UtcTicks - (now.UtcTicks % Period.Ticks) + Period.Ticks, TimeSpan.Zero);

    /// <summary>
    /// Which replica holds the fires due at the next fire time, taken from the store or already recorded
    /// ahead of their time (<c>qrtz_fired_triggers</c>), and how many; <paramref name="otherwise"/> and 0
    /// when none does yet.
    /// </summary>
    public static async Task<(int Replica, int Held)> HolderOfNextFiresAsync(Deployment deployment, IReadOnlyList<ReplicaProcess> replicas, int otherwise)
    {
        var next = NextFireTime(DateTimeOffset.UtcNow).UtcTicks;
        await using var connection = new Npgsql.NpgsqlConnection(deployment.ConnectionString);
        await connection.OpenAsync();
        await using var read = new Npgsql.NpgsqlCommand(
            "SELECT instance_name, count(*) FROM qrtz_fired_triggers WHERE sched_time = @next GROUP BY instance_name ORDER BY count(*) DESC LIMIT 1", connection);
        read.Parameters.AddWithValue("next", next);
        await using var row = await read.ExecuteReaderAsync();
        if (await row.ReadAsync())
        {
            var holder = row.GetString(0);
            for (var i = 0; i < replicas.Count; i++)
            {
                if (replicas[i].InstanceId == holder)
                {
                    return (i, (int)row.GetInt64(1));
                }
            }
        }
        return (otherwise, 0);
    }

    public static async Task<Deployment> DeployAsync(Cluster cluster, string name)
    {
        var deployment = await Deployment.CreateAsync(cluster, name, ScheduleAudit.Definitions(Pipeline, Schedules));
        await deployment.StartCoordinatorAsync();
        deployment.StartWorker("worker-1");
        await deployment.WaitForConsumersAsync(Core.Planning.StepQueues.ForHandler("demo.echo"), 1);
        return deployment;
    }

    public static ReplicaProcess StartReplica(Deployment deployment, string name, ConcurrentQueue<SchedulerEvent> events) =>
        ReplicaProcess.Start(name, deployment.WorkerEnvironment, deployment.Folder, events);

    /// <summary>Waits for the first fire of every schedule, so the observed window starts with all of them live; returns its time.</summary>
    public static async Task<DateTimeOffset> WaitForFiringAsync(Deployment deployment)
    {
        await Shell.WaitUntilAsync(async () => await deployment.Store.ReadAsync(c => c.Runs.Where(r => r.Schedule != null).Select(r => r.Schedule).Distinct().CountAsync()) == Schedules,
            TimeSpan.FromSeconds(90), "every schedule firing");
        return DateTimeOffset.UtcNow;
    }

    /// <summary>Audits the fires of [<paramref name="from"/>, <paramref name="to"/>], drains their runs and reconciles them against the ledger.</summary>
    public static async Task<(ScheduleAudit Audit, Reconciliation Runs, TimeSpan Drained)> AuditAsync(
        Deployment deployment, DateTimeOffset from, DateTimeOffset to, IEnumerable<SchedulerEvent> events)
    {
        var audit = await ScheduleAudit.ComputeAsync(deployment.Store, Pipeline, Schedules, Period, from, to, [.. events]);
        var drained = await Reconciliation.DrainAsync(deployment.Store, () => Task.FromResult<IReadOnlyCollection<Guid>>(audit.Runs), TimeSpan.FromMinutes(2));
        return (audit, await Reconciliation.ComputeAsync(deployment.Store, audit.Runs, deployment.ReadLedger()), drained);
    }

    /// <summary>The first run stored after <paramref name="since"/>, and the first finished after it.</summary>
    public static async Task<(TimeSpan? Stored, TimeSpan? Finished)> FirstAfterAsync(Deployment deployment, DateTimeOffset since, TimeSpan wait)
    {
        var deadline = DateTimeOffset.UtcNow + wait;
        TimeSpan? stored = null, finished = null;
        while (DateTimeOffset.UtcNow < deadline && (stored is null || finished is null))
        {
            try
            {
                stored ??= await deployment.Store.ReadAsync(c => c.Runs.Where(r => r.CreatedAt > since).OrderBy(r => r.CreatedAt).Select(r => (DateTimeOffset?)r.CreatedAt).FirstOrDefaultAsync()) - since;
                finished ??= await deployment.Store.ReadAsync(c => c.Runs.Where(r => r.FinishedAt > since).OrderBy(r => r.FinishedAt).Select(r => r.FinishedAt).FirstOrDefaultAsync()) - since;
            }
            catch (Exception e) when (e is Npgsql.NpgsqlException or InvalidOperationException or TimeoutException)
            {
                // The database is still coming back.
            }
            await Task.Delay(TimeSpan.FromMilliseconds(250));
        }
        return (stored, finished);
    }
}
