using System.Text.Json.Nodes;
using MassTransit;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;
using Pipelines.Core.Contracts;
using Pipelines.Core.Execution;
using Pipelines.Core.Persistence;
using Pipelines.Core.Planning;
using Pipelines.Core.Runs;

namespace Pipelines.Workers.Steps;

/// <summary>
/// Undoes a completed step after its run failed. A failing compensation is recorded on the step
/// and the remaining compensations still run: stopping half-way would leave more undone.
/// </summary>
/// <remarks>
/// A compensation runs under a lease, as a step does: the coordinator's sweep resends a
/// compensation slip that went quiet, and the lease keeps the copy from undoing a step the first
/// copy is still undoing. A copy that finds the lease held stops there; the holder goes on with the
/// rest, in order.
/// </remarks>
public sealed partial class CompensateStepActivity(
    PipelineCatalog catalog, RunStore store, StepLeases leases, IEnumerable<IStepExecutor> executors,
    StepLogWriter logs, ISecretResolver secrets, ILoggerFactory loggerFactory, ILogger<CompensateStepActivity> logger)
    : IExecuteActivity<StepArguments>
{
    public async Task<ExecutionResult> Execute(ExecuteContext<StepArguments> context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var (runId, stepName) = (context.Arguments.RunId, context.Arguments.Step);
        switch (await leases.ClaimCompensationAsync(runId, stepName, context.CancellationToken))
        {
            case CompensationClaim.Ended:
                return context.Completed();
            case CompensationClaim.HeldElsewhere:
                LogHeldElsewhere(runId, stepName);
                return SlipEnds.Stop(context);
        }

        using var heartbeat = new CancellationTokenSource();
        var renewing = KeepLeaseAsync(runId, stepName, heartbeat.Token);
        try
        {
            var (undone, error) = await CompensateAsync(context);
            if (!await leases.EndCompensationAsync(runId, stepName, undone, error, CancellationToken.None))
            {
                LogLostLease(runId, stepName);
            }
            return context.Completed();
        }
        catch (OperationCanceledException) when (context.CancellationToken.IsCancellationRequested)
        {
            // The worker is stopping: the compensation and the rest of the slip go back to the queue.
            await leases.ReleaseCompensationAsync(runId, stepName, CancellationToken.None);
            var step = catalog.Get(context.Arguments.Pipeline).Definition.FindStep(stepName)!;
            return SlipEnds.HandBack(context, StepQueues.Address(StepQueues.CompensationFor(step)));
        }
        finally
        {
            await heartbeat.CancelAsync();
            await renewing;
        }
    }

    /// <summary>Runs the step's compensation: whether it undid anything, or why it failed.</summary>
    private async Task<(bool Undone, StepError? Error)> CompensateAsync(ExecuteContext<StepArguments> context)
    {
        var (runId, pipelineName, stepName) = (context.Arguments.RunId, context.Arguments.Pipeline, context.Arguments.Step);
        var definition = catalog.Get(pipelineName).Definition.FindStep(stepName)!;
        var record = await store.ReadAsync(c => c.Steps.Where(s => s.RunId == runId && s.Name == stepName)
            .Join(c.Runs, s => s.RunId, r => r.Id, (s, r) => new { s.Output, s.Attempts, r.Input }).SingleAsync(context.CancellationToken));
        var revealed = new RevealedSecrets(secrets);
        var stepContext = new StepContext
        {
            RunId = runId,
            Pipeline = pipelineName,
            Step = stepName,
            Event = JsonNode.Parse(record.Input)?.AsObject() ?? [],
            Inputs = new Dictionary<string, JsonNode?>(),
            Attempt = record.Attempts,
            Logger = loggerFactory.CreateLogger($"Pipelines.Steps.{pipelineName}.{stepName}"),
            CancellationToken = context.CancellationToken,
            Definition = definition,
            Log = logs.For(runId, stepName, record.Attempts, int.MaxValue, revealed),
            Secrets = revealed,
        };
        StepError? error = null;
        var undone = false;
        try
        {
            if (executors.FirstOrDefault(e => e.CanExecute(definition)) is { } executor)
            {
                undone = await executor.CompensateAsync(stepContext, record.Output is null ? null : JsonNode.Parse(record.Output));
            }
        }
        catch (Exception exception) when (exception is not OperationCanceledException)
        {
            error = StepError.From(exception).MaskedWith(revealed);
            LogCompensationFailed(runId, stepName, error.Message);
        }
        if (undone || error is not null)
        {
            stepContext.Log.Write("system", error is null ? "compensated" : $"compensation failed: {error.Message}");
            await logs.FlushAsync();
        }
        return (undone, error);
    }

    private async Task KeepLeaseAsync(Guid runId, string step, CancellationToken stop)
    {
        try
        {
            while (true)
            {
                await Task.Delay(leases.LeaseDuration / 3, stop);
                if (!await leases.RenewCompensationAsync(runId, step, stop))
                {
                    LogLostLease(runId, step);
                    return;
                }
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
        }
        catch (Exception exception)
        {
            // A database outage: the lease may lapse and a resent slip undo the step again; say so.
            LogHeartbeatFailed(exception, runId, step);
        }
    }

    // The masked message only: the exception's own may hold a secret the step resolved.
    [LoggerMessage(Level = LogLevel.Error, Message = "Run {RunId}: compensation of step '{Step}' failed: {Error}")]
    private partial void LogCompensationFailed(Guid runId, string step, string error);

    [LoggerMessage(Level = LogLevel.Information, Message = "Run {RunId}: the compensation of step '{Step}' is running under another copy of its slip's lease; this copy stops here and that one goes on with the rest")]
    private partial void LogHeldElsewhere(Guid runId, string step);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Run {RunId}: this worker lost the lease on the compensation of step '{Step}' while running it; another copy of the slip may have undone it too")]
    private partial void LogLostLease(Guid runId, string step);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Run {RunId}: lease renewal of the compensation of step '{Step}' failed")]
    private partial void LogHeartbeatFailed(Exception exception, Guid runId, string step);
}
