using Microsoft.Extensions.Logging;

namespace Pipelines.Workers.Containers;

/// <summary>Log events of container steps; ids 4000–4099 are this folder's.</summary>
internal static partial class ContainerExecutionLog
{
    [LoggerMessage(EventId = 4001, Level = LogLevel.Information,
        Message = "Started container {Container} of step {Step} (attempt {Attempt}) of run {RunId} of {Pipeline}: image {Image}, runtime {Runtime}")]
    public static partial void Started(ILogger logger, Guid runId, string pipeline, string step, int attempt, string container, string image, string runtime);

    [LoggerMessage(EventId = 4002, Level = LogLevel.Information,
        Message = "Container {Container} of step {Step} (attempt {Attempt}) of run {RunId} of {Pipeline} exited with code {ExitCode}")]
    public static partial void Exited(ILogger logger, Guid runId, string pipeline, string step, int attempt, string container, long exitCode);

    [LoggerMessage(EventId = 4003, Level = LogLevel.Warning,
        Message = "Could not remove container {Container} of step {Step} (attempt {Attempt}) of run {RunId} of {Pipeline}; the orphan reaper removes it when this worker restarts")]
    public static partial void RemoveFailed(ILogger logger, Guid runId, string pipeline, string step, int attempt, string container, Exception exception);

    [LoggerMessage(EventId = 4004, Level = LogLevel.Warning,
        Message = "Removed container {ContainerId} of step {Step} of run {RunId} of {Pipeline}, left by attempt {LeftAttempt} on worker {LeftWorker}, before attempt {Attempt}")]
    public static partial void LeftoverRemoved(ILogger logger, Guid runId, string pipeline, string step, int attempt, string containerId, string? leftAttempt, string? leftWorker);

    [LoggerMessage(EventId = 4005, Level = LogLevel.Warning,
        Message = "Removed orphaned container {Container} of step {Step} of run {RunId}, left by an earlier run of worker {Worker}")]
    public static partial void OrphanRemoved(ILogger logger, string worker, string container, string? runId, string? step);

    [LoggerMessage(EventId = 4006, Level = LogLevel.Warning,
        Message = "Could not look for orphaned containers of worker {Worker} on the Docker engine at {Endpoint}; container steps fail until it answers")]
    public static partial void ReaperFailed(ILogger logger, string worker, string endpoint, Exception exception);

    [LoggerMessage(EventId = 4007, Level = LogLevel.Information, Message = "Removed {Count} containers of run {RunId}")]
    public static partial void RunContainersRemoved(ILogger logger, Guid runId, int count);

    [LoggerMessage(EventId = 4008, Level = LogLevel.Warning,
        Message = "The network pool is off: no holder of image {Image} could be started; steps create their own network namespace")]
    public static partial void NetworkPoolUnavailable(ILogger logger, string image, Exception exception);

    [LoggerMessage(EventId = 4009, Level = LogLevel.Warning, Message = "Could not start a network namespace holder; retrying")]
    public static partial void NamespaceHolderFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 4010, Level = LogLevel.Warning, Message = "Network namespace holder {Container} had exited with code {ExitCode}; it was not used")]
    public static partial void NamespaceHolderExited(ILogger logger, string container, long exitCode);

    [LoggerMessage(EventId = 4011, Level = LogLevel.Warning,
        Message = "Could not remove network namespace holder {Container}; the orphan reaper removes it when this worker restarts")]
    public static partial void NamespaceHolderRemoveFailed(ILogger logger, string container, Exception exception);

    [LoggerMessage(EventId = 4012, Level = LogLevel.Warning,
        Message = "Removed {Count} network namespace holders of worker process {WorkerInstance}, whose attempt of step {Step} of run {RunId} of {Pipeline} was left behind, before attempt {Attempt}")]
    public static partial void LeftoverHoldersRemoved(ILogger logger, Guid runId, string pipeline, string step, int attempt, int count, string workerInstance);
}
