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
public sealed partial class CompensateStepActivity(
    PipelineCatalog catalog, RunStore store, StepLeases leases, IEnumerable<IStepExecutor> executors,
    StepLogWriter logs, ISecretResolver secrets, ILoggerFactory loggerFactory, ILogger<CompensateStepActivity> logger)
    : IExecuteActivity<StepArguments>
{
    public async Task<ExecutionResult> Execute(ExecuteContext<StepArguments> context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var (runId, pipelineName, stepName) = (context.Arguments.RunId, context.Arguments.Pipeline, context.Arguments.Step);
        var pipeline = catalog.Get(pipelineName).Definition;
        var definition = pipeline.FindStep(stepName)!;
        var record = await store.ReadAsync(c => c.Steps.Where(s => s.RunId == runId && s.Name == stepName)
            .Select(s => new { s.State, s.Output, s.Attempts }).SingleAsync(context.CancellationToken));
        if (record.State != StepState.Succeeded)
        {
            return context.Completed();
        }
        var input = await store.ReadAsync(c => c.Runs.Where(r => r.Id == runId).Select(r => r.Input).SingleAsync(context.CancellationToken));
        var revealed = new RevealedSecrets(secrets);
        var stepContext = new StepContext
        {
            RunId = runId,
            Pipeline = pipelineName,
            Step = stepName,
            Event = JsonNode.Parse(input)?.AsObject() ?? [],
            Inputs = new Dictionary<string, JsonNode?>(),
            Attempt = record.Attempts,
            Logger = loggerFactory.CreateLogger($"Pipelines.Steps.{pipelineName}.{stepName}"),
            CancellationToken = context.CancellationToken,
            Definition = definition,
            Log = logs.For(runId, stepName, record.Attempts, int.MaxValue, revealed),
            Secrets = revealed,
        };
        StepError? error = null;
        var compensated = false;
        try
        {
            var executor = executors.FirstOrDefault(e => e.CanExecute(definition));
            if (executor is not null)
            {
                compensated = await executor.CompensateAsync(stepContext, record.Output is null ? null : JsonNode.Parse(record.Output));
            }
        }
        catch (Exception exception) when (exception is not OperationCanceledException)
        {
            error = StepError.From(exception).MaskedWith(revealed);
            LogCompensationFailed(runId, stepName, error.Message);
        }
        if (compensated || error is not null)
        {
            stepContext.Log.Write("system", error is null ? "compensated" : $"compensation failed: {error.Message}");
            await logs.FlushAsync();
            await leases.MarkCompensatedAsync(runId, stepName, error, context.CancellationToken);
        }
        return context.Completed();
    }

    // The masked message only: the exception's own may hold a secret the step resolved.
    [LoggerMessage(Level = LogLevel.Error, Message = "Run {RunId}: compensation of step '{Step}' failed: {Error}")]
    private partial void LogCompensationFailed(Guid runId, string step, string error);
}
