using Microsoft.Extensions.Logging;
using Quartz;

namespace Pipelines.Scheduler.Schedules;

/// <summary>
/// Logs each misfire decision. Quartz calls this before it applies the trigger's misfire instruction,
/// so <see cref="ITrigger.NextFireTimeUtc"/> is still the fire that was missed.
/// </summary>
internal sealed class MisfireLogger(TimeProvider clock, ILogger<MisfireLogger> logger) : ITriggerListener
{
    public string Name => "pipelines-misfires";

    public ValueTask TriggerMisfired(ITrigger trigger, IScheduler scheduler, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(trigger);
        if (trigger.Key.Group != ScheduleKey.Group || trigger.NextFireTimeUtc is not { } due)
        {
            return ValueTask.CompletedTask;
        }
        var key = ScheduleKey.FromJobKey(trigger.JobKey);
        if (trigger.MisfireInstructionCode == (int)CronTriggerMisfireInstruction.DoNothing)
        {
            logger.MisfireSkipped(key, due, trigger.GetFireTimeAfter(clock.GetUtcNow()));
        }
        else
        {
            logger.MisfireFiringOnce(key, due);
        }
        return ValueTask.CompletedTask;
    }
}
