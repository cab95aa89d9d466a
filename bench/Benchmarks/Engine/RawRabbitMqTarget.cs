using RabbitMQ.Client;
using RabbitMQ.Client.Events;

namespace Pipelines.Bench.Benchmarks.Engine;

/// <summary>
/// The broker alone, the floor under everything else: RabbitMQ.Client publishes a persistent
/// message to a durable queue and waits for the publisher confirm; a consumer on its own connection
/// acknowledges each message. One run is one message, from publish to delivery.
/// </summary>
internal sealed class RawRabbitMqTarget(BenchServices services, int prefetch) : BenchTarget
{
    private const string Queue = "bench-raw";

    private static readonly BasicProperties Persistent = new() { Persistent = true };

    private readonly Completions<DateTimeOffset> _delivered = new();
    private IConnection? _publisherConnection;
    private IConnection? _consumerConnection;
    private IChannel? _publisher;
    private IChannel? _consumer;

    public override string Key => "rabbitmq";

    public override string Name => "RabbitMQ.Client publish → consume";

    public override int StepsPerRun => 1;

    public override async Task PrepareAsync(CancellationToken cancellationToken)
    {
        VirtualHost = await services.CreateVirtualHostAsync("raw", cancellationToken);
        await using var connection = await Factory().CreateConnectionAsync(cancellationToken);
        await using var channel = await connection.CreateChannelAsync(cancellationToken: cancellationToken);
        await channel.QueueDeclareAsync(Queue, durable: true, exclusive: false, autoDelete: false, cancellationToken: cancellationToken);
    }

    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        var factory = Factory();
        _consumerConnection = await factory.CreateConnectionAsync("bench-raw-consumer", cancellationToken);
        _consumer = await _consumerConnection.CreateChannelAsync(cancellationToken: cancellationToken);
        await _consumer.BasicQosAsync(0, (ushort)prefetch, global: false, cancellationToken);
        var consumer = new AsyncEventingBasicConsumer(_consumer);
        consumer.ReceivedAsync += async (_, delivery) =>
        {
            var received = DateTimeOffset.UtcNow;
            var id = new Guid(delivery.Body.Span);
            await _consumer.BasicAckAsync(delivery.DeliveryTag, multiple: false, cancellationToken);
            _delivered.Complete(id, received);
        };
        await _consumer.BasicConsumeAsync(Queue, autoAck: false, consumer, cancellationToken);

        _publisherConnection = await factory.CreateConnectionAsync("bench-raw-publisher", cancellationToken);
        _publisher = await _publisherConnection.CreateChannelAsync(
            new CreateChannelOptions(publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true), cancellationToken);
    }

    protected override async Task<RunSample> RunAsync(CancellationToken cancellationToken)
    {
        var id = Guid.NewGuid();
        var issued = DateTimeOffset.UtcNow;
        // Returns once the broker confirmed the message: it is on disk.
        await _publisher!.BasicPublishAsync("", Queue, mandatory: false, Persistent, id.ToByteArray(), cancellationToken);
        var received = await _delivered.WaitAsync(id, cancellationToken);
        return new RunSample(id, issued, received, received);
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        foreach (var closable in new IAsyncDisposable?[] { _publisher, _publisherConnection, _consumer, _consumerConnection })
        {
            if (closable is not null)
            {
                await closable.DisposeAsync();
            }
        }
        (_publisher, _publisherConnection, _consumer, _consumerConnection) = (null, null, null, null);
    }

    public override ValueTask DisposeAsync() => new(StopAsync(CancellationToken.None));

    private ConnectionFactory Factory() => new() { Uri = services.Amqp(VirtualHost!) };
}
