using Pipelines.Client;
using Pipelines.Core.Definitions;
using Pipelines.Scheduler.Schedules;

namespace Pipelines.Api.Mapping;

internal static class ScheduleMapping
{
    public static Schedule ToSchedule(this ScheduleDescription description) =>
        new Schedule(description.Definition.ToSpec(description.Key.Pipeline))
        {
            Source = description.Source,
            State = description.State,
            NextFireTimes = description.NextFireTimes,
            PreviousFireTime = description.PreviousFireTime,
            QueuedFires = description.QueuedFires,
        };

    /// <summary>The definition a request asks for; what it leaves out takes the definition file's defaults.</summary>
    public static ScheduleDefinition ToDefinition(this ScheduleSpec spec, string name)
    {
        var defaults = new ScheduleDefinition();
        return new ScheduleDefinition
        {
            Name = name,
            Cron = spec.Cron ?? "",
            Timezone = spec.Timezone ?? defaults.Timezone,
            Payload = spec.Payload,
            Enabled = spec.Enabled ?? defaults.Enabled,
            Misfire = spec.Misfire ?? defaults.Misfire,
            Overlap = spec.Overlap ?? defaults.Overlap,
            StartAt = spec.StartAt,
            EndAt = spec.EndAt,
        };
    }
}
