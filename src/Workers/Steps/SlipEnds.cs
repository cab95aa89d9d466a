using MassTransit;
using Pipelines.Core.Contracts;
using Pipelines.Core.Planning;

namespace Pipelines.Workers.Steps;

/// <summary>How the worker's activities end a routing slip other than by completing their activity.</summary>
internal static class SlipEnds
{
    /// <summary>Ends the slip here; the coordinator reads the marker as an activity's choice, not a fault.</summary>
    public static ExecutionResult Stop(ExecuteContext<StepArguments> context) => context.Terminate(StoppedVariables);

    /// <summary>Puts this activity and the rest of the slip back on <paramref name="queue"/>, for a worker that is not stopping.</summary>
    public static ExecutionResult HandBack(ExecuteContext<StepArguments> context, Uri queue) =>
        context.ReviseItinerary(itinerary =>
        {
            itinerary.AddActivity(context.ActivityName, queue, context.Arguments);
            itinerary.AddActivitiesFromSourceItinerary();
        });

    private static readonly Dictionary<string, object> StoppedVariables = new() { [RoutingSlipPlanner.StoppedVariable] = true };
}
