using MassTransit;
using MassTransit.Courier.Contracts;
using Pipelines.Core.Contracts;
using Pipelines.Core.Planning;
using Pipelines.Core.Telemetry;

namespace Pipelines.Core.Coordination;

/// <summary>Applies a coordinator decision once its transaction committed: start chains, publish events.</summary>
internal static class CoordinatorActionsExtensions
{
    public static async Task ApplyAsync<TBus>(this CoordinatorActions actions, TBus bus, CancellationToken cancellationToken)
        where TBus : ISendEndpointProvider, IPublishEndpoint
    {
        foreach (var slip in actions.Slips)
        {
            await bus.Execute(slip, cancellationToken);
        }
        foreach (var message in actions.Events)
        {
            await bus.Publish(message, message.GetType(), cancellationToken);
        }
    }

    public static Task ApplyAsync(this CoordinatorActions actions, ConsumeContext context) =>
        actions.ApplyAsync(context, context.CancellationToken);
}

public sealed class StartRunConsumer(RunCoordinator coordinator) : IConsumer<StartRun>
{
    public async Task Consume(ConsumeContext<StartRun> context) =>
        await (await coordinator.StartAsync(context.Message, context.CancellationToken)).ApplyAsync(context);
}

/// <summary>
/// Starts each run of a <see cref="StartRuns"/> in turn, in the run's own trace, as a <see cref="StartRun"/>
/// of it would. A failure retries the whole message; the runs it already started then only have their
/// unstarted chains sent again, as for a redelivered <see cref="StartRun"/>.
/// </summary>
public sealed class StartRunsConsumer(RunCoordinator coordinator) : IConsumer<StartRuns>
{
    public async Task Consume(ConsumeContext<StartRuns> context)
    {
        foreach (var run in context.Message.Runs)
        {
            using var trace = PipelinesTelemetry.StartRunActivity("start run", run.RunId, run.Pipeline, run.TraceParent);
            await (await coordinator.StartAsync(new StartRun { RunId = run.RunId }, context.CancellationToken)).ApplyAsync(context);
        }
    }
}

public sealed class CancelRunConsumer(RunCoordinator coordinator) : IConsumer<CancelRun>
{
    public async Task Consume(ConsumeContext<CancelRun> context) =>
        await (await coordinator.CancelAsync(context.Message.RunId, context.CancellationToken)).ApplyAsync(context);
}

public sealed class DetachedStepFinishedConsumer(RunCoordinator coordinator) : IConsumer<DetachedStepFinished>
{
    public async Task Consume(ConsumeContext<DetachedStepFinished> context) =>
        await (await coordinator.DetachedStepFinishedAsync(context.Message.RunId, context.Message.Step, context.CancellationToken)).ApplyAsync(context);
}

/// <summary>The end of every routing slip the coordinator planned: a chain, or the compensations of a failed run.</summary>
public sealed class RoutingSlipEndConsumer(RunCoordinator coordinator)
    : IConsumer<RoutingSlipCompleted>, IConsumer<RoutingSlipFaulted>
{
    public Task Consume(ConsumeContext<RoutingSlipCompleted> context)
    {
        var variables = context.Message.Variables;
        // A slip an activity terminated completes too, carrying that activity's marker. A detached
        // step goes on in the background and reports by message: its chain is not over.
        return variables.ContainsKey(RoutingSlipPlanner.DetachedStepVariable) ? Task.CompletedTask
            : EndAsync(context, variables, variables.ContainsKey(RoutingSlipPlanner.StoppedVariable) ? ChainEnd.Terminated : ChainEnd.Completed);
    }

    public Task Consume(ConsumeContext<RoutingSlipFaulted> context) => EndAsync(context, context.Message.Variables, ChainEnd.Faulted);

    private async Task EndAsync(ConsumeContext context, IDictionary<string, object> variables, ChainEnd end)
    {
        var runId = context.SerializerContext.GetValue<Guid>(variables, RoutingSlipPlanner.RunVariable);
        if (runId is not { } run)
        {
            return;
        }
        var actions = variables.ContainsKey(RoutingSlipPlanner.CompensationVariable)
            ? await coordinator.CompensationEndedAsync(run, end, context.CancellationToken)
            : await coordinator.ChainEndedAsync(run, context.SerializerContext.GetValue<int>(variables, RoutingSlipPlanner.ChainVariable) ?? 0, end, context.CancellationToken);
        await actions.ApplyAsync(context);
    }
}
