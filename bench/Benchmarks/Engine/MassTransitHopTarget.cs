using MassTransit;

namespace Pipelines.Bench.Benchmarks.Engine;

/// <summary>
/// The yardstick for the engine's cost per step: a plain MassTransit 8.5 consumer on RabbitMQ with
/// the bus's defaults (persistent messages, publisher confirms) and the worker's concurrency. One
/// run is one message sent to the consumer's queue, from <c>Send</c> to the consumer.
/// </summary>
internal sealed class MassTransitHopTarget(BenchServices services, int concurrentMessageLimit) : BenchTarget
{
    private const string Queue = "bench-hop";

    private readonly Completions<DateTimeOffset> _consumed = new();
    private IBusControl? _bus;
    private ISendEndpoint? _endpoint;

    public override string Key => "masstransit";

    public override string Name => "MassTransit consumer hop";

    public override int StepsPerRun => 1;

    public override async Task PrepareAsync(CancellationToken cancellationToken) =>
        VirtualHost = await services.CreateVirtualHostAsync("masstransit", cancellationToken);

    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        _bus = Bus.Factory.CreateUsingRabbitMq(rabbit =>
        {
            rabbit.Host(services.Amqp(VirtualHost!));
            rabbit.ReceiveEndpoint(Queue, endpoint =>
            {
                endpoint.ConcurrentMessageLimit = concurrentMessageLimit;
                endpoint.Handler<Hop>(context =>
                {
                    _consumed.Complete(context.Message.Id, DateTimeOffset.UtcNow);
                    return Task.CompletedTask;
                });
            });
        });
        await _bus.StartAsync(cancellationToken);
        _endpoint = await _bus.GetSendEndpoint(new Uri($"queue:{Queue}"));
    }

    protected override async Task<RunSample> RunAsync(CancellationToken cancellationToken)
    {
        var id = Guid.NewGuid();
        var issued = DateTimeOffset.UtcNow;
        await _endpoint!.Send(new Hop(id), cancellationToken);
        var consumed = await _consumed.WaitAsync(id, cancellationToken);
        return new RunSample(id, issued, consumed, consumed);
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_bus is not null)
        {
            await _bus.StopAsync(cancellationToken);
            _bus = null;
        }
    }

    public override ValueTask DisposeAsync() => new(StopAsync(CancellationToken.None));
}

/// <summary>The message of the MassTransit hop.</summary>
internal sealed record Hop(Guid Id);
