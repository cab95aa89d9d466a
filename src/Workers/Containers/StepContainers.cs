using Docker.DotNet;
using Docker.DotNet.Models;
using Pipelines.Core.Execution;

namespace Pipelines.Workers.Containers;

/// <summary>
/// The containers of one step attempt. Everything created through it is killed and removed when it
/// is disposed — whatever the outcome, cancellation and timeouts included — and the log streams
/// following them are drained.
/// </summary>
internal sealed class StepContainers(ContainerEngine engine, StepContext context, StepLogSink log, TimeProvider time) : IAsyncDisposable
{
    // Removal must outlive the step's own token, which is what got cancelled when a step times out.
    private static readonly TimeSpan CleanupTimeout = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan LogDrainTimeout = TimeSpan.FromSeconds(10);

    private readonly List<(string Id, string Name)> _created = [];
    private readonly List<Task> _logPumps = [];
    private readonly CancellationTokenSource _stopPumps = new();

    private IDockerClient Docker => engine.Client;

    /// <summary>The container name of the step (<paramref name="sidecar"/> null) or one of its sidecars; one name per attempt.</summary>
    public static string NameFor(StepContext context, string? sidecar) =>
        $"pipelines-{context.RunId:N}-{context.Step}-{context.Attempt}" + (sidecar is null ? "" : $"-{sidecar}");

    /// <summary>
    /// Removes containers of this step left on this engine by an earlier attempt, e.g. one whose
    /// worker died and whose step was redelivered here, so no duplicate keeps running; and the
    /// network namespace holders of that attempt's worker process, which belong to no run, so that
    /// no one else would remove them while that worker does not come back.
    /// </summary>
    public async Task RemoveLeftoversAsync(CancellationToken cancellationToken)
    {
        var leftovers = await ListAsync(cancellationToken, (ContainerLabels.Run, context.RunId.ToString()), (ContainerLabels.Step, context.Step));
        foreach (var leftover in leftovers)
        {
            leftover.Labels.TryGetValue(ContainerLabels.Attempt, out var attempt);
            leftover.Labels.TryGetValue(ContainerLabels.Worker, out var worker);
            await RemoveAsync(leftover.ID, cancellationToken);
            log.System($"removed container {leftover.Names.FirstOrDefault()?.TrimStart('/')} left by attempt {attempt} on worker {worker}");
            ContainerExecutionLog.LeftoverRemoved(context.Logger, context.RunId, context.Pipeline, context.Step, context.Attempt, leftover.ID, attempt, worker);
        }
        var leftBy = leftovers
            .Select(l => l.Labels.TryGetValue(ContainerLabels.WorkerInstance, out var instance) ? instance : null)
            .OfType<string>()
            .Where(instance => instance != engine.InstanceId)
            .Distinct(StringComparer.Ordinal);
        foreach (var instance in leftBy)
        {
            var holders = await ListAsync(cancellationToken, (ContainerLabels.WorkerInstance, instance), (ContainerLabels.Role, "network"));
            foreach (var holder in holders)
            {
                await RemoveAsync(holder.ID, cancellationToken);
            }
            if (holders.Count > 0)
            {
                ContainerExecutionLog.LeftoverHoldersRemoved(context.Logger, context.RunId, context.Pipeline, context.Step, context.Attempt, holders.Count, instance);
            }
        }
    }

    private async Task<IList<ContainerListResponse>> ListAsync(CancellationToken cancellationToken, params (string Key, string Value)[] labels) =>
        await Docker.Containers.ListContainersAsync(new ContainersListParameters { All = true, Filters = ContainerLabels.Filter(labels) }, cancellationToken);

    public async Task<string> CreateAsync(CreateContainerParameters parameters, CancellationToken cancellationToken)
    {
        var created = await Docker.Containers.CreateContainerAsync(parameters, cancellationToken);
        _created.Add((created.ID, parameters.Name));
        return created.ID;
    }

    public async Task StartAsync(string id, CancellationToken cancellationToken)
    {
        if (!await Docker.Containers.StartContainerAsync(id, new ContainerStartParameters(), cancellationToken))
        {
            throw new StepFailedException($"step '{context.Step}': the Docker engine did not start container {id}", "docker");
        }
    }

    /// <summary>
    /// Attaches to the created container's stdout/stderr and starts copying them into the step log;
    /// the copy ends when the container stops. Attach, before the start, rather than follow the
    /// engine's log: a follower can miss the last lines of a container that exits.
    /// </summary>
    public async Task<Task> AttachLogAsync(string id, string prefix, bool isStep, CancellationToken cancellationToken)
    {
        var stream = await Docker.Containers.AttachContainerAsync(id, tty: false, new ContainerAttachParameters
        {
            Stream = true,
            Stdout = true,
            Stderr = true,
        }, cancellationToken);
        var pump = PumpAsync(stream, prefix, isStep);
        _logPumps.Add(pump);
        return pump;
    }

    private async Task PumpAsync(MultiplexedStream stream, string prefix, bool isStep)
    {
        using (stream)
        {
            try
            {
                await ContainerLogPump.PumpAsync(stream, log, prefix, isStep, _stopPumps.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or IOException or ObjectDisposedException)
            {
                // The container was removed under the stream, or the wait for it ended.
            }
        }
    }

    /// <summary>Waits for the step's log copy to reach the end of its output, for a bounded time.</summary>
    public static async Task DrainAsync(Task pump, TimeProvider time)
    {
        try
        {
            await pump.WaitAsync(LogDrainTimeout, time);
        }
        catch (TimeoutException)
        {
            // The log stream did not close with the container; the lines read so far are kept.
        }
    }

    public async ValueTask DisposeAsync()
    {
        using var cleanup = new CancellationTokenSource(CleanupTimeout, time);
        for (var i = _created.Count - 1; i >= 0; i--)
        {
            var (id, name) = _created[i];
            try
            {
                await RemoveAsync(id, cleanup.Token);
            }
            catch (Exception e) when (e is DockerApiException or HttpRequestException or IOException or OperationCanceledException)
            {
                // The orphan reaper removes it at the next start of this worker.
                ContainerExecutionLog.RemoveFailed(context.Logger, context.RunId, context.Pipeline, context.Step, context.Attempt, name, e);
            }
        }
        try
        {
            await Task.WhenAll(_logPumps).WaitAsync(LogDrainTimeout, time);
        }
        catch (TimeoutException)
        {
            await _stopPumps.CancelAsync();
        }
        _stopPumps.Dispose();
    }

    /// <summary>Kills (if running) and removes a container with its anonymous volumes; an already gone container is fine.</summary>
    private async Task RemoveAsync(string id, CancellationToken cancellationToken)
    {
        try
        {
            await Docker.Containers.RemoveContainerAsync(id, new ContainerRemoveParameters { Force = true, RemoveVolumes = true }, cancellationToken);
        }
        catch (DockerContainerNotFoundException)
        {
        }
        catch (DockerApiException e) when (e.StatusCode == System.Net.HttpStatusCode.Conflict)
        {
            // "removal already in progress": another remover (the reaper, a cancelled run) got there first.
        }
    }
}
