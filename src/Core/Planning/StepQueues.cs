using Pipelines.Core.Definitions;

namespace Pipelines.Core.Planning;

/// <summary>
/// Queue names of step activities. A handler step goes to the queue of its handler, so a worker
/// consumes only the handlers it hosts; <c>pool</c> sends a step to a named set of workers
/// instead; container steps go to the container queue served by workers with a Docker engine.
/// </summary>
public static class StepQueues
{
    public const string Coordinator = "pipelines-coordinator";
    public const string Containers = "pipelines-containers";

    public static string ForHandler(string handler) => $"pipelines-handler-{handler}";

    public static string ForPool(string pool) => $"pipelines-pool-{pool}";

    public static string For(StepDefinition step)
    {
        ArgumentNullException.ThrowIfNull(step);
        return step.Pool is { } pool ? ForPool(pool)
            : step.Handler is { } handler ? ForHandler(handler)
            : Containers;
    }

    /// <summary>Where a step's compensation runs: beside the step, on the workers that host it.</summary>
    public static string CompensationFor(StepDefinition step) => $"{For(step)}-compensate";

    public static Uri Address(string queue) => new($"queue:{queue}");
}
