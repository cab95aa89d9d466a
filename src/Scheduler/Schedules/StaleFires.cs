using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using Microsoft.Extensions.Logging;
using Quartz;
using Quartz.Impl.AdoJobStore;

namespace Pipelines.Scheduler.Schedules;

/// <summary>
/// Fires this replica took for a coming fire time and then lost to another replica, which failed this
/// one out while it was unresponsive (paused, frozen, starved of CPU) and fires them itself. This
/// replica must not run them: <see cref="FencedPostgreSqlDelegate"/> records them, <see cref="StaleFireVeto"/>
/// drops them.
/// </summary>
internal sealed class StaleFires
{
    private readonly ConcurrentDictionary<string, byte> _fireInstanceIds = new(StringComparer.Ordinal);

    public void Add(string fireInstanceId) => _fireInstanceIds.TryAdd(fireInstanceId, 0);

    public bool TryTake(string fireInstanceId) => _fireInstanceIds.TryRemove(fireInstanceId, out _);
}

/// <summary>
/// Quartz's PostgreSQL delegate with the check its clustered store leaves out: a replica fires only the
/// triggers it still holds.
/// </summary>
/// <remarks>
/// A replica takes ("acquires") the triggers due in the next second and waits for their time. When a
/// peer fails it out meanwhile, the peer frees those triggers (and deletes the replica's reservation
/// rows in <c>qrtz_fired_triggers</c>), fires them, and may already have taken them again for their next
/// fire time. Quartz 4.7.3 fires an acquired trigger when its row says <c>ACQUIRED</c>, whoever holds
/// it; so the resumed replica fired its stale copy, wrote back the next fire time after the stale one
/// (in the past), and the peer's fire due at that moment found the row no longer acquired and was
/// dropped — lost, with no misfire logged (docs/reliability.md, finding 2). Here a fire whose
/// reservation is no longer this replica's writes nothing and is vetoed; the trigger stays as the peer
/// left it, and the peer fires it.
/// </remarks>
internal sealed class FencedPostgreSqlDelegate(StaleFires stale) : PostgreSQLDelegate
{
    /// <summary>Row-locks this replica's reservations until the firing transaction ends, so a peer cannot fail them out between this check and the fire.</summary>
    private const string LockHeldSql =
        "SELECT ENTRY_ID FROM {0}FIRED_TRIGGERS WHERE SCHED_NAME = @schedulerName AND INSTANCE_NAME = @instanceName AND STATE = @state FOR UPDATE";

    /// <summary>This replica's reservations, read and locked once per firing transaction.</summary>
    private readonly ConditionalWeakTable<ConnectionAndTransactionHolder, HashSet<string>> _held = [];

    private string _instanceId = "";

    /// <summary>Our override handles fires made as they are acquired (it passes them on), so Quartz may keep firing due triggers in the acquiring transaction.</summary>
    public override bool SupportsFireOnAcquire => true;

    public override void Initialize(DriverDelegateContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        base.Initialize(context);
        _instanceId = context.InstanceId;
    }

    public override async ValueTask ApplyTriggerFired(ConnectionAndTransactionHolder conn, TriggerFiredUpdate update, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(update);
        // A fire made as it is acquired is claimed in this very transaction: nobody can hold it but us.
        if (!update.FiredOnAcquire && update.Trigger.FireInstanceId is { } fireInstanceId
            && !(await HeldAsync(conn, cancellationToken)).Contains(fireInstanceId))
        {
            stale.Add(fireInstanceId);
            return;
        }
        await base.ApplyTriggerFired(conn, update, cancellationToken);
    }

    private async ValueTask<HashSet<string>> HeldAsync(ConnectionAndTransactionHolder conn, CancellationToken cancellationToken)
    {
        if (_held.TryGetValue(conn, out var held))
        {
            return held;
        }
        await using var command = PrepareCommand(conn, ReplaceTablePrefix(LockHeldSql));
        AddCommandParameter(command, "schedulerName", SchedulerName);
        AddCommandParameter(command, "instanceName", _instanceId);
        AddCommandParameter(command, "state", "ACQUIRED");
        held = new HashSet<string>(StringComparer.Ordinal);
        await using (var rows = await command.ExecuteReaderAsync(cancellationToken))
        {
            while (await rows.ReadAsync(cancellationToken))
            {
                held.Add(rows.GetString(0));
            }
        }
        _held.AddOrUpdate(conn, held);
        return held;
    }
}

/// <summary>Vetoes the fires <see cref="FencedPostgreSqlDelegate"/> found this replica no longer holds, and logs each.</summary>
internal sealed class StaleFireVeto(StaleFires stale, ILogger<StaleFireVeto> logger) : ITriggerListener
{
    public string Name => "pipelines-stale-fires";

    public ValueTask<bool> VetoJobExecution(ITrigger trigger, IJobExecutionContext context, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(trigger);
        ArgumentNullException.ThrowIfNull(context);
        if (!stale.TryTake(context.FireInstanceId))
        {
            return ValueTask.FromResult(false);
        }
        if (trigger.JobKey.Group == ScheduleKey.Group)
        {
            logger.StaleFireDropped(ScheduleKey.FromJobKey(trigger.JobKey), ScheduleTriggers.QueuedFireTimeOf(trigger) ?? context.ScheduledFireTimeUtc ?? context.FireTimeUtc);
        }
        return ValueTask.FromResult(true);
    }
}
