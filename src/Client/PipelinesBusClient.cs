using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Pipelines.Core.Contracts;
using Pipelines.Core.Coordination;
using Pipelines.Core.Planning;
using Pipelines.Core.Runs;

namespace Pipelines.Client;

/// <summary>
/// Starts and cancels runs by publishing <see cref="StartRun"/> and <see cref="CancelRun"/> on the
/// bus, for code that lives inside a worker or a service connected to the deployment's broker. The
/// coordinator stores and starts the run. When this process has the pipeline catalog (every
/// Pipelines role does), the pipeline and payload are checked here first, so a bad start throws
/// instead of failing in the coordinator. Register with <see cref="PipelinesBusClientExtensions.AddPipelinesBusClient"/>.
/// </summary>
public sealed class PipelinesBusClient(IPublishEndpoint bus, PipelineCatalog? catalog = null)
{
    /// <summary>
    /// Publishes a start and returns the run's id. With an <paramref name="idempotencyKey"/>, the id
    /// is derived from the key (<see cref="RunLauncher.RunIdFor"/>), as when the API starts a run with
    /// that key, so publishing the same start again — a retry after a broker hiccup — or starting it
    /// over HTTP too names the same run and starts nothing new.
    /// </summary>
    /// <exception cref="UnknownPipelineException">The catalog has no such pipeline.</exception>
    /// <exception cref="InvalidRunInputException">The payload does not fit the pipeline's parameters.</exception>
    /// <exception cref="ReservedIdempotencyKeyException">The key starts with <c>schedule:</c>, the scheduler's form.</exception>
    public async Task<Guid> StartRunAsync(string pipeline, object? payload = null, string? idempotencyKey = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(pipeline);
        RunLauncher.RequireOwnKey(idempotencyKey);
        var json = Payloads.ToObject(payload);
        if (catalog is not null)
        {
            RunLauncher.InputOf(catalog.Get(pipeline).Definition, json);
        }
        var runId = idempotencyKey is null ? NewId.NextGuid() : RunLauncher.RunIdFor(idempotencyKey);
        await bus.Publish(new StartRun
        {
            RunId = runId,
            Pipeline = pipeline,
            Payload = json?.ToJsonString(),
            IdempotencyKey = idempotencyKey,
            Trigger = RunTriggers.Bus,
        }, cancellationToken);
        return runId;
    }

    /// <summary>Asks the coordinator to cancel the run.</summary>
    public Task CancelRunAsync(Guid runId, CancellationToken cancellationToken = default) =>
        bus.Publish(new CancelRun(runId), cancellationToken);
}

public static class PipelinesBusClientExtensions
{
    /// <summary>Registers <see cref="PipelinesBusClient"/> (scoped, like MassTransit's publish endpoint) in a process that has the Pipelines bus.</summary>
    public static IServiceCollection AddPipelinesBusClient(this IServiceCollection services)
    {
        services.TryAddScoped<PipelinesBusClient>();
        return services;
    }
}
