using MassTransit;
using Microsoft.Extensions.Options;
using Pipelines.Api.Security;

namespace Pipelines.Api.Http;

/// <summary>
/// Sends to the broker only while it is reachable, and never waits on it longer than
/// <see cref="ApiOptions.BrokerTimeout"/>: an outage is a 503 in seconds, not a hung request.
/// Checking first means a start refused for a down broker stores nothing; one that times out after
/// storing its run is started by the coordinator's sweep once the broker is back, and the same
/// <c>Idempotency-Key</c> finds it.
/// </summary>
public sealed class BrokerGate(IBusControl bus, IOptions<ApiOptions> options)
{
    public async Task<T> SendAsync<T>(Func<CancellationToken, Task<T>> send, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(send);
        if (bus.CheckHealth().Status == BusHealthStatus.Unhealthy)
        {
            throw ApiProblems.Unavailable("The message broker is unreachable; nothing was done. Try again later.");
        }
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(options.Value.BrokerTimeout);
        try
        {
            return await send(timeout.Token);
        }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            throw ApiProblems.Unavailable(
                $"The message broker did not answer within {options.Value.BrokerTimeout.TotalSeconds:0.#} s. A run that was stored is started once it is back; repeat the request with the same Idempotency-Key to find it.");
        }
    }

    public Task SendAsync(Func<CancellationToken, Task> send, CancellationToken cancellationToken) =>
        SendAsync(async token =>
        {
            await send(token);
            return true;
        }, cancellationToken);
}
