using Microsoft.Extensions.Logging;

namespace Pipelines.Scheduler.Schedules;

/// <summary>The scheduler's log events, ids 5000-5099. Fields: {Schedule} is <c>pipeline/name</c>, times are UTC.</summary>
internal static partial class SchedulerLog
{
    [LoggerMessage(5001, LogLevel.Information, "Schedule {Schedule} fired for {FireTime:O}: started run {RunId}")]
    public static partial void Fired(this ILogger logger, ScheduleKey schedule, DateTimeOffset fireTime, Guid runId);

    [LoggerMessage(5002, LogLevel.Debug, "Schedule {Schedule} fire for {FireTime:O} had already started run {RunId} (another replica, or a retry)")]
    public static partial void AlreadyFired(this ILogger logger, ScheduleKey schedule, DateTimeOffset fireTime, Guid runId);

    [LoggerMessage(5003, LogLevel.Warning, "Schedule {Schedule} missed its fire at {DueTime:O} (the scheduler was down or overloaded); misfire policy fire_once: firing once now")]
    public static partial void MisfireFiringOnce(this ILogger logger, ScheduleKey schedule, DateTimeOffset dueTime);

    [LoggerMessage(5004, LogLevel.Warning, "Schedule {Schedule} missed its fire at {DueTime:O} (the scheduler was down or overloaded); misfire policy skip: next fire at {NextFireTime:O}")]
    public static partial void MisfireSkipped(this ILogger logger, ScheduleKey schedule, DateTimeOffset dueTime, DateTimeOffset? nextFireTime);

    [LoggerMessage(5005, LogLevel.Information, "Schedule {Schedule} fire for {FireTime:O} skipped: run {RunId} of an earlier fire is still {State} (overlap: skip)")]
    public static partial void OverlapSkipped(this ILogger logger, ScheduleKey schedule, DateTimeOffset fireTime, Guid runId, string state);

    [LoggerMessage(5006, LogLevel.Information, "Schedule {Schedule} fire for {FireTime:O} queued behind an earlier fire that has not finished (overlap: queue)")]
    public static partial void OverlapQueued(this ILogger logger, ScheduleKey schedule, DateTimeOffset fireTime);

    [LoggerMessage(5007, LogLevel.Warning, "Schedule {Schedule} fire for {FireTime:O} dropped: {Queued} fires are already queued, the most allowed (Pipelines:Scheduler:MaxQueuedFires)")]
    public static partial void QueueFull(this ILogger logger, ScheduleKey schedule, DateTimeOffset fireTime, int queued);

    [LoggerMessage(5008, LogLevel.Error, "Schedule {Schedule} fire for {FireTime:O} started no run: {Reason}")]
    public static partial void FireRefused(this ILogger logger, ScheduleKey schedule, DateTimeOffset fireTime, string reason);

    [LoggerMessage(5009, LogLevel.Warning, "Schedule {Schedule} fire for {FireTime:O} stored run {RunId} but could not send its start; the coordinator's sweep of pending runs will start it")]
    public static partial void StartNotSent(this ILogger logger, ScheduleKey schedule, DateTimeOffset fireTime, Guid runId, Exception exception);

    [LoggerMessage(5010, LogLevel.Error, "Schedule {Schedule} fire for {FireTime:O} failed to store its run; Quartz retries the fire")]
    public static partial void FireFailed(this ILogger logger, ScheduleKey schedule, DateTimeOffset fireTime, Exception exception);

    [LoggerMessage(5011, LogLevel.Warning, "Schedule {Schedule} fire for {FireTime:O} not started on this replica: another replica took this one's fires over while it was unresponsive, and fires it there")]
    public static partial void StaleFireDropped(this ILogger logger, ScheduleKey schedule, DateTimeOffset fireTime);

    [LoggerMessage(5012, LogLevel.Warning, "Could not fire {Count} triggers ahead of their time; Quartz fires them at their time")]
    public static partial void FireAheadFailed(this ILogger logger, int count, Exception exception);

    [LoggerMessage(5013, LogLevel.Warning, "Schedule {Schedule} fire for {FireTime:O} is run again: the replica that fired it stopped before it finished")]
    public static partial void FireRecovered(this ILogger logger, ScheduleKey schedule, DateTimeOffset fireTime);

    [LoggerMessage(5015, LogLevel.Warning, "Schedule {Schedule} fire for {FireTime:O} is not run again although the replica that fired it stopped before it finished: it is past the misfire threshold, and the misfire policy is skip")]
    public static partial void RecoveredFireSkipped(this ILogger logger, ScheduleKey schedule, DateTimeOffset fireTime);

    [LoggerMessage(5014, LogLevel.Information, "Schedule {Schedule} fire for {FireTime:O} withdrawn: the schedule was paused or deleted after the fire was recorded, before its time")]
    public static partial void FireWithdrawn(this ILogger logger, ScheduleKey schedule, DateTimeOffset fireTime);

    [LoggerMessage(5020, LogLevel.Information, "Schedules from the definition file: {Created} created, {Updated} updated, {Unchanged} unchanged, {Removed} removed; {KeptFromApi} left as changed through the API")]
    public static partial void FileSynced(this ILogger logger, int created, int updated, int unchanged, int removed, int keptFromApi);

    [LoggerMessage(5021, LogLevel.Information, "Schedule {Schedule} is declared in the definition file but was changed through the API; the API's version is kept")]
    public static partial void FileScheduleOverridden(this ILogger logger, ScheduleKey schedule);

    [LoggerMessage(5022, LogLevel.Warning, "Schedule {Schedule} from the definition file has no fire time left (end_at has passed); it is stored as ended")]
    public static partial void FileScheduleEnded(this ILogger logger, ScheduleKey schedule);

    [LoggerMessage(5030, LogLevel.Information, "Schedule {Schedule} {Change} through the API")]
    public static partial void Changed(this ILogger logger, ScheduleKey schedule, string change);
}
