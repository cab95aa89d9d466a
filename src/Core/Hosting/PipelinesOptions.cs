using Pipelines.Core.Persistence;

namespace Pipelines.Core.Hosting;

public enum TransportKind
{
    /// <summary>MassTransit's in-memory transport: every role in one process (the embedded default).</summary>
    InMemory,
    RabbitMq,
}

/// <summary>Configuration section <c>Pipelines</c> (environment: <c>Pipelines__Transport=RabbitMq</c>, ...).</summary>
public sealed class PipelinesOptions
{
    public const string Section = "Pipelines";

    /// <summary>The definition file every role of the deployment loads.</summary>
    public string Definitions { get; set; } = "config/pipelines.yaml";

    public TransportKind Transport { get; set; } = TransportKind.InMemory;

    /// <summary>AMQP URI of the broker, e.g. <c>amqp://user:password@rabbitmq:5672/vhost</c>.</summary>
    public string RabbitMq { get; set; } = "amqp://guest:guest@127.0.0.1:5672/";

    public RunStoreOptions Database { get; set; } = new();

    /// <summary>The environment <c>skip_in_env</c> refers to; default <c>PIPELINES_ENV</c>.</summary>
    public string? Environment { get; set; }
}
