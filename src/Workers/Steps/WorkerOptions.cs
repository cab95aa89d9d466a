namespace Pipelines.Workers.Steps;

/// <summary>Configuration section <c>Pipelines:Worker</c>.</summary>
public sealed class WorkerOptions
{
    /// <summary>
    /// Names this worker in attempts and container labels; stable across restarts (default: the host
    /// name, which is the pod name in Kubernetes) so a restarted worker finds the containers it left.
    /// Workers sharing a host need distinct ids.
    /// </summary>
    public string Id { get; set; } = Environment.MachineName;

    /// <summary>This process's lease owner name: the id plus what tells apart two runs of it.</summary>
    public string InstanceId => $"{Id}/{Environment.ProcessId}/{InstanceSuffix}";

    private static readonly string InstanceSuffix = Guid.NewGuid().ToString("N")[..6];

    /// <summary>Pools (<c>pool:</c> in the definition) this worker serves besides its handlers.</summary>
    public List<string> Pools { get; set; } = [];

    /// <summary>Steps of one handler (or pool) this worker runs at once.</summary>
    public int ConcurrencyPerQueue { get; set; } = 16;

    /// <summary>
    /// How long a step may hold its message before it detaches: the message is acknowledged, the
    /// step goes on in the background under its lease, and its completion is reported by message.
    /// Must stay below the broker's consumer acknowledgement timeout (RabbitMQ: 30 minutes).
    /// </summary>
    public TimeSpan HoldDeliveryFor { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>A step's lease; renewed every third of it while the step runs. A dead worker's step is taken over after it expires.</summary>
    public TimeSpan LeaseDuration { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>On SIGTERM, how long in-flight steps may finish before they are handed back.</summary>
    public TimeSpan GracePeriod { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Log lines kept per step attempt; lines beyond are dropped and the cap is stated in the log.</summary>
    public int MaxLogLinesPerAttempt { get; set; } = 10_000;
}
