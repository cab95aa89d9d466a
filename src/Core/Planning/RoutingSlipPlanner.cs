using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using MassTransit;
using MassTransit.Courier.Contracts;
using Pipelines.Core.Contracts;

namespace Pipelines.Core.Planning;

/// <summary>
/// Builds the routing slip of a chain (or of the rest of a chain). Each activity is named after
/// its step and addressed to the step's queue; outputs of steps in other chains that the chain
/// depends on ride along as variables, and each activity adds its own output. Only the
/// coordinator subscribes, and only to the end of the slip, so an N-step chain costs N+1 messages.
/// </summary>
public sealed class RoutingSlipPlanner(PipelineCatalog catalog)
{
    public const string RunVariable = "pipelines.run";
    public const string ChainVariable = "pipelines.chain";
    public const string CompensationVariable = "pipelines.compensation";
    /// <summary>Set by an activity that ends its slip early because its step went on in the background.</summary>
    public const string DetachedStepVariable = "pipelines.detached";
    /// <summary>Set by an activity that ends its slip early because its run stopped accepting work or its step was cancelled.</summary>
    public const string StoppedVariable = "pipelines.stopped";

    private static readonly Uri CoordinatorAddress = StepQueues.Address(StepQueues.Coordinator);
    private readonly ConcurrentDictionary<string, IReadOnlyDictionary<string, (Uri Execute, Uri Compensate)>> _addresses = new();

    public static string OutputVariable(string step) => $"out:{step}";

    public RoutingSlip PlanChain(Guid runId, string pipeline, int chain, IReadOnlyList<string> steps, IReadOnlyDictionary<string, string?> upstreamOutputs)
    {
        ArgumentNullException.ThrowIfNull(steps);
        ArgumentNullException.ThrowIfNull(upstreamOutputs);
        var addresses = AddressesOf(pipeline);
        var builder = new RoutingSlipBuilder(TrackingNumber(runId, $"{chain}/{steps[0]}"));
        foreach (var step in steps)
        {
            builder.AddActivity(step, addresses[step].Execute, new StepArguments { RunId = runId, Pipeline = pipeline, Step = step });
        }
        builder.AddVariable(RunVariable, runId);
        builder.AddVariable(ChainVariable, chain);
        foreach (var (step, output) in upstreamOutputs)
        {
            builder.AddVariable(OutputVariable(step), output ?? "null");
        }
        Subscribe(builder);
        return builder.Build();
    }

    /// <summary>One slip that runs the compensations of <paramref name="steps"/>, in the order given.</summary>
    public RoutingSlip PlanCompensation(Guid runId, string pipeline, IReadOnlyList<string> steps)
    {
        ArgumentNullException.ThrowIfNull(steps);
        var addresses = AddressesOf(pipeline);
        var builder = new RoutingSlipBuilder(TrackingNumber(runId, "compensation"));
        foreach (var step in steps)
        {
            builder.AddActivity(step, addresses[step].Compensate, new StepArguments { RunId = runId, Pipeline = pipeline, Step = step });
        }
        builder.AddVariable(RunVariable, runId);
        builder.AddVariable(CompensationVariable, true);
        Subscribe(builder);
        return builder.Build();
    }

    private static void Subscribe(RoutingSlipBuilder builder) =>
        builder.AddSubscription(
            CoordinatorAddress,
            // A terminated slip also reports Completed (with the terminating activity's variables),
            // so Terminated would only add a message.
            RoutingSlipEvents.Completed | RoutingSlipEvents.Faulted,
            RoutingSlipEventContents.Variables);

    private IReadOnlyDictionary<string, (Uri Execute, Uri Compensate)> AddressesOf(string pipeline) =>
        _addresses.GetOrAdd(pipeline, name => catalog.Get(name).Definition.Steps.ToDictionary(
            s => s.Name,
            s => (StepQueues.Address(StepQueues.For(s)), StepQueues.Address(StepQueues.CompensationFor(s))),
            StringComparer.Ordinal));

    /// <summary>
    /// Deterministic, so that a slip dispatched twice (a redelivered event) is recognisable as the
    /// same slip in logs and in the coordinator.
    /// </summary>
    private static Guid TrackingNumber(Guid runId, string discriminator)
    {
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(Encoding.UTF8.GetBytes($"{runId:N}/{discriminator}"), hash);
        return new Guid(hash[..16]);
    }
}
