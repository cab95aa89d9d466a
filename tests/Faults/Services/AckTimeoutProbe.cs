using System.Diagnostics;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;

namespace Pipelines.Faults.Services;

/// <summary>
/// Shows that a shortened <c>consumer_timeout</c> is really in force: a plain AMQP consumer takes one
/// delivery and never acknowledges it; the broker must close its channel (406) after the timeout.
/// </summary>
internal static class AckTimeoutProbe
{
    /// <summary>How long the broker let an unacknowledged delivery live, or null if it never closed the channel within <paramref name="wait"/>.</summary>
    public static async Task<(TimeSpan? ClosedAfter, string Reason)> RunAsync(string uri, TimeSpan wait)
    {
        var factory = new ConnectionFactory { Uri = new Uri(uri) };
        await using var connection = await factory.CreateConnectionAsync();
        await using var channel = await connection.CreateChannelAsync();
        var queue = (await channel.QueueDeclareAsync($"faults-ack-probe-{Guid.NewGuid():N}", durable: false, exclusive: false, autoDelete: true)).QueueName;
        await channel.BasicPublishAsync("", queue, "hold me"u8.ToArray());
        var closed = new TaskCompletionSource<ShutdownEventArgs>(TaskCreationOptions.RunContinuationsAsynchronously);
        var received = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        channel.ChannelShutdownAsync += (_, e) =>
        {
            closed.TrySetResult(e);
            return Task.CompletedTask;
        };
        var consumer = new AsyncEventingBasicConsumer(channel);
        consumer.ReceivedAsync += (_, _) =>
        {
            received.TrySetResult();
            return Task.CompletedTask;
        };
        await channel.BasicConsumeAsync(queue, autoAck: false, consumer);
        await received.Task.WaitAsync(TimeSpan.FromSeconds(10));
        var clock = Stopwatch.StartNew();
        if (await Task.WhenAny(closed.Task, Task.Delay(wait)) != closed.Task)
        {
            return (null, "still open");
        }
        var shutdown = await closed.Task;
        return (clock.Elapsed, $"{shutdown.ReplyCode} {shutdown.ReplyText}");
    }
}
