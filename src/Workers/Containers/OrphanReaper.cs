using Docker.DotNet.Models;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Pipelines.Workers.Containers;

/// <summary>
/// Removes containers this worker left behind. At start-up: every container labelled with this
/// worker's id by an earlier process of it (a crash or a kill left them). On demand: every
/// container of a cancelled run. Containers without the <c>pipelines.managed</c> label, and those
/// of other workers, are never touched.
/// </summary>
public sealed class OrphanReaper(ContainerEngine engine, ILogger<OrphanReaper> logger) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        try
        {
            await RemoveOrphansAsync(cancellationToken);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // A worker that hosts handler steps too must start without a Docker engine.
            ContainerExecutionLog.ReaperFailed(logger, engine.Options.WorkerId, engine.Endpoint, e);
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>Removes the containers of earlier processes of this worker; returns how many.</summary>
    public async Task<int> RemoveOrphansAsync(CancellationToken cancellationToken = default)
    {
        var mine = await ListAsync(cancellationToken, (ContainerLabels.Worker, engine.Options.WorkerId));
        var orphans = mine
            .Where(c => !c.Labels.TryGetValue(ContainerLabels.WorkerInstance, out var instance) || instance != engine.InstanceId)
            .ToList();
        foreach (var orphan in orphans)
        {
            await RemoveAsync(orphan, cancellationToken);
            orphan.Labels.TryGetValue(ContainerLabels.Run, out var run);
            orphan.Labels.TryGetValue(ContainerLabels.Step, out var step);
            ContainerExecutionLog.OrphanRemoved(logger, engine.Options.WorkerId, Name(orphan), run, step);
        }
        return orphans.Count;
    }

    /// <summary>
    /// Kills and removes every container of <paramref name="runId"/> on this engine, whichever
    /// worker started it; for a cancelled run whose steps' workers may not get the cancellation.
    /// </summary>
    public async Task<int> RemoveRunContainersAsync(Guid runId, CancellationToken cancellationToken = default)
    {
        var containers = await ListAsync(cancellationToken, (ContainerLabels.Run, runId.ToString()));
        foreach (var container in containers)
        {
            await RemoveAsync(container, cancellationToken);
        }
        ContainerExecutionLog.RunContainersRemoved(logger, runId, containers.Count);
        return containers.Count;
    }

    private async Task<IList<ContainerListResponse>> ListAsync(CancellationToken cancellationToken, params (string Key, string Value)[] labels) =>
        await engine.Client.Containers.ListContainersAsync(new ContainersListParameters { All = true, Filters = ContainerLabels.Filter(labels) }, cancellationToken);

    private async Task RemoveAsync(ContainerListResponse container, CancellationToken cancellationToken)
    {
        // The engine filtered on the label already; checking again keeps a filter mistake from ever touching a foreign container.
        if (!container.Labels.TryGetValue(ContainerLabels.Managed, out var managed) || managed != "true")
        {
            return;
        }
        try
        {
            await engine.Client.Containers.RemoveContainerAsync(container.ID, new ContainerRemoveParameters { Force = true, RemoveVolumes = true }, cancellationToken);
        }
        catch (Docker.DotNet.DockerContainerNotFoundException)
        {
        }
    }

    private static string Name(ContainerListResponse container) => container.Names?.FirstOrDefault()?.TrimStart('/') ?? container.ID;
}
