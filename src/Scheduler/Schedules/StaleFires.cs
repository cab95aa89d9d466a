using System.Collections.Concurrent;
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
    /// <summary>
    /// Row-locks this fire's reservation until the firing transaction ends, so a peer cannot fail it out
    /// between this check and the fire. One primary-key lookup per fire.
    /// </summary>
    private const string LockHeldSql =
        "SELECT 1 FROM {0}FIRED_TRIGGERS WHERE SCHED_NAME = @schedulerName AND ENTRY_ID = @entryId AND INSTANCE_NAME = @instanceName AND STATE = @state FOR UPDATE";

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
            && !await HoldsAsync(conn, fireInstanceId, cancellationToken))
        {
            stale.Add(fireInstanceId);
            return;
        }
        await base.ApplyTriggerFired(conn, update, cancellationToken);
    }

    private async ValueTask<bool> HoldsAsync(ConnectionAndTransactionHolder conn, string fireInstanceId, CancellationToken cancellationToken)
    {
        await using var command = PrepareCommand(conn, ReplaceTablePrefix(LockHeldSql));
        AddCommandParameter(command, "schedulerName", SchedulerName);
        AddCommandParameter(command, "entryId", fireInstanceId);
        AddCommandParameter(command, "instanceName", _instanceId);
        AddCommandParameter(command, "state", "ACQUIRED");
        return await command.ExecuteScalarAsync(cancellationToken) is not null;
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
