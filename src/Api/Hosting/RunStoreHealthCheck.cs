using Microsoft.Extensions.Diagnostics.HealthChecks;
using Pipelines.Core.Persistence;

namespace Pipelines.Api.Hosting;

/// <summary>The run store's database accepts a connection.</summary>
public sealed class RunStoreHealthCheck(RunStore store) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        try
        {
            return await store.ReadAsync(c => c.Database.CanConnectAsync(cancellationToken))
                ? HealthCheckResult.Healthy()
                : HealthCheckResult.Unhealthy("the database does not accept connections");
        }
        catch (Exception exception) when (exception is not OperationCanceledException)
        {
            return HealthCheckResult.Unhealthy("the database does not accept connections");
        }
    }
}
