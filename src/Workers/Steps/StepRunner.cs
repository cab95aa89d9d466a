using System.Collections.Concurrent;
using System.Text.Json.Nodes;
using MassTransit;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Pipelines.Core.Contracts;
using Pipelines.Core.Definitions;
using Pipelines.Core.Execution;
using Pipelines.Core.Planning;
using Pipelines.Core.Runs;
using Pipelines.Core.Telemetry;

namespace Pipelines.Workers.Steps;

/// <summary>
/// Runs steps on a worker. A step is claimed under a lease in the run store before it runs, so a
/// redelivered message (a worker died, the broker timed the delivery out) never runs it twice:
/// a finished step replays its stored output, a step with a live lease elsewhere is waited for,
/// and a step whose worker stopped renewing is taken over as a new attempt. A step that outlives
/// <see cref="WorkerOptions.HoldDeliveryFor"/> detaches from its message and reports by message.
/// </summary>
public sealed partial class StepRunner(
    PipelineCatalog catalog,
    StepLeases leases,
    IEnumerable<IStepExecutor> executors,
    StepLogWriter logs,
    ISecretResolver secrets,
    IBus bus,
    IOptions<WorkerOptions> options,
    IHostApplicationLifetime lifetime,
    ILoggerFactory loggerFactory,
    ILogger<StepRunner> logger) : IHostedService
{
    /// <summary>Set before any hosted service stops (the bus included): from then on no new step starts here.</summary>
    private bool Stopping => lifetime.ApplicationStopping.IsCancellationRequested;

    private readonly ConcurrentDictionary<(Guid Run, string Step), RunningStep> _running = new();
    private readonly WorkerOptions _options = options.Value;

    private enum Ending
    {
        Succeeded,
        Failed,
        Cancelled,
        HandedBack,
    }

    private sealed record Outcome(Ending Ending, string? Output = null, Exception? Error = null, bool Detached = false);

    public async Task<ExecutionResult> ExecuteAsync(ExecuteContext<StepArguments> context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var (runId, pipelineName, stepName) = (context.Arguments.RunId, context.Arguments.Pipeline, context.Arguments.Step);
        var waitedSince = DateTimeOffset.UtcNow;
        var waitLogged = false;
        while (true)
        {
            // Also while it waits for another worker's lease: a delivery held past shutdown would
            // outlive the run store it waits on.
            if (Stopping)
            {
                return await HandBackUnclaimedAsync(context);
            }
            switch (await leases.ClaimAsync(runId, stepName, context.CancellationToken))
            {
                case StepClaim.AlreadyDone done:
                    return context.CompletedWithVariables(OutputVariables(stepName, done.Output));
                case StepClaim.Inactive inactive:
                    LogNotRunning(runId, stepName, inactive.Reason);
                    return SlipEnds.Stop(context);
                case StepClaim.HeldElsewhere held:
                    if (!waitLogged)
                    {
                        LogWaitingForLease(runId, stepName, held.LeaseExpiresAt);
                        waitLogged = true;
                    }
                    if (DateTimeOffset.UtcNow - waitedSince > _options.HoldDeliveryFor)
                    {
                        await leases.MarkDetachedAsync(runId, stepName, context.CancellationToken);
                        return context.Terminate(DetachedVariables(stepName));
                    }
                    var wait = held.LeaseExpiresAt - DateTimeOffset.UtcNow;
                    await WaitUnlessStoppingAsync(wait < TimeSpan.FromSeconds(1) ? TimeSpan.FromSeconds(1) : TimeSpan.FromSeconds(Math.Min(wait.TotalSeconds, 5)), context.CancellationToken);
                    continue;
                case StepClaim.Claimed claimed:
                    return await RunClaimedAsync(context, pipelineName, stepName, claimed);
            }
        }
    }

    private async Task WaitUnlessStoppingAsync(TimeSpan delay, CancellationToken cancellationToken)
    {
        using var wake = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, lifetime.ApplicationStopping);
        try
        {
            await Task.Delay(delay, wake.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
        }
    }

    /// <summary>
    /// A step delivered while this worker stops is not started: the slip goes back to the step's
    /// queue (the same activity again, then the rest), for a worker that is not stopping.
    /// </summary>
    private async Task<ExecutionResult> HandBackUnclaimedAsync(ExecuteContext<StepArguments> context)
    {
        await Task.Delay(TimeSpan.FromMilliseconds(250), CancellationToken.None);
        var step = catalog.Get(context.Arguments.Pipeline).Definition.FindStep(context.Arguments.Step)!;
        return SlipEnds.HandBack(context, StepQueues.Address(StepQueues.For(step)));
    }

    /// <summary>Cancels the running steps of a run (they end as cancelled).</summary>
    public void CancelRun(Guid runId)
    {
        foreach (var step in _running.Values.Where(s => s.RunId == runId))
        {
            step.Cancel(Ending.Cancelled);
        }
    }

    private async Task<ExecutionResult> RunClaimedAsync(ExecuteContext<StepArguments> context, string pipelineName, string stepName, StepClaim.Claimed claimed)
    {
        var runId = context.Arguments.RunId;
        var pipeline = catalog.Get(pipelineName).Definition;
        var definition = pipeline.FindStep(stepName) ?? throw new InvalidOperationException($"pipeline '{pipelineName}' has no step '{stepName}'");
        var inputs = await InputsAsync(context, runId, definition);
        var running = new RunningStep(runId, stepName, claimed.Attempt);
        _running[(runId, stepName)] = running;
        var execution = RunAttemptsAsync(running, pipeline, definition, JsonNode.Parse(claimed.Input)?.AsObject() ?? [], inputs);
        var heartbeat = KeepLeaseAsync(running);
        using var giveBackOnShutdown = context.CancellationToken.Register(() => running.Cancel(Ending.HandedBack));

        using var holdTimer = new CancellationTokenSource();
        var first = await Task.WhenAny(execution, Task.Delay(_options.HoldDeliveryFor, holdTimer.Token));
        await holdTimer.CancelAsync();
        if (first != execution && await leases.DetachAsync(runId, stepName, running.Attempt, CancellationToken.None))
        {
            LogDetached(runId, stepName, _options.HoldDeliveryFor);
            _ = FinishDetachedAsync(running, execution, heartbeat);
            return context.Terminate(DetachedVariables(stepName));
        }

        var outcome = await execution;
        await running.StopHeartbeatAsync(heartbeat);
        _running.TryRemove((runId, stepName), out _);
        running.Dispose();
        return outcome.Ending switch
        {
            Ending.Succeeded => context.CompletedWithVariables(OutputVariables(stepName, outcome.Output)),
            Ending.Failed => context.Faulted(outcome.Error!),
            // Handed back: the lease now looks expired and the step detached, so the coordinator
            // dispatches it again at once.
            Ending.HandedBack => context.Terminate(DetachedVariables(stepName)),
            _ => SlipEnds.Stop(context),
        };
    }

    private async Task FinishDetachedAsync(RunningStep running, Task<Outcome> execution, Task heartbeat)
    {
        try
        {
            var outcome = await execution;
            await running.StopHeartbeatAsync(heartbeat);
            if (outcome.Ending != Ending.HandedBack)
            {
                var coordinator = await bus.GetSendEndpoint(StepQueues.Address(StepQueues.Coordinator));
                await coordinator.Send(new DetachedStepFinished(running.RunId, running.Step));
            }
        }
        catch (Exception exception)
        {
            // The lease expires and the coordinator's reaper dispatches the step again.
            LogDetachedReportFailed(exception, running.RunId, running.Step);
        }
        finally
        {
            _running.TryRemove((running.RunId, running.Step), out _);
            running.Dispose();
        }
    }

    private async Task<Outcome> RunAttemptsAsync(RunningStep running, PipelineDefinition pipeline, StepDefinition definition, JsonObject input, IReadOnlyDictionary<string, JsonNode?> inputs)
    {
        var retry = RunPlanner.RetryOf(pipeline, definition);
        var timeout = RunPlanner.TimeoutOf(pipeline, definition);
        var executor = executors.FirstOrDefault(e => e.CanExecute(definition));
        while (true)
        {
            var attempt = running.Attempt;
            using var attemptCancellation = CancellationTokenSource.CreateLinkedTokenSource(running.Token);
            if (timeout is { } limit)
            {
                attemptCancellation.CancelAfter(limit);
            }
            var revealed = new RevealedSecrets(secrets);
            var context = new StepContext
            {
                RunId = running.RunId,
                Pipeline = pipeline.Name,
                Step = definition.Name,
                Event = input,
                Inputs = inputs,
                Attempt = attempt,
                Logger = loggerFactory.CreateLogger($"Pipelines.Steps.{pipeline.Name}.{definition.Name}"),
                CancellationToken = attemptCancellation.Token,
                Definition = definition,
                Log = logs.For(running.RunId, definition.Name, attempt, _options.MaxLogLinesPerAttempt, revealed),
                Secrets = revealed,
            };
            Exception error;
            using var span = PipelinesTelemetry.Source.StartActivity($"step {definition.Name}");
            span?.SetTag("pipelines.run_id", running.RunId.ToString());
            span?.SetTag("pipelines.step", definition.Name);
            span?.SetTag("pipelines.attempt", attempt);
            var started = System.Diagnostics.Stopwatch.GetTimestamp();
            void Record(string outcome)
            {
                span?.SetTag("pipelines.outcome", outcome);
                PipelinesTelemetry.RecordStepAttempt(pipeline.Name, definition.Name, outcome, System.Diagnostics.Stopwatch.GetElapsedTime(started));
            }
            try
            {
                if (executor is null)
                {
                    throw new StepFailedException($"no worker here can run step '{definition.Name}' ({Describe(definition)})", "unsupported") { Retryable = false };
                }
                var output = revealed.Mask(await executor.ExecuteAsync(context));
                await logs.FlushAsync();
                var json = output?.ToJsonString();
                var (recorded, detached) = await leases.FinishAsync(running.RunId, definition.Name, attempt, StepState.Succeeded, json, null, context.Details.AsReadOnly(), CancellationToken.None);
                if (!recorded)
                {
                    LogLostLease(running.RunId, definition.Name, attempt);
                }
                Record("succeeded");
                return new Outcome(Ending.Succeeded, json, Detached: detached);
            }
            catch (Exception exception) when (running.Token.IsCancellationRequested)
            {
                Record(running.Reason == Ending.HandedBack ? "handed-back" : "cancelled");
                await logs.FlushAsync();
                return await EndCancelledAsync(running, context, exception);
            }
            catch (OperationCanceledException) when (attemptCancellation.IsCancellationRequested)
            {
                error = new StepFailedException($"step '{definition.Name}' timed out after {new Duration(timeout!.Value)}", "timeout");
            }
            catch (Exception exception)
            {
                error = exception;
            }

            Record(error is StepFailedException { Kind: "timeout" } ? "timeout" : "failed");
            var stored = StepError.From(error).MaskedWith(revealed);
            span?.SetStatus(System.Diagnostics.ActivityStatusCode.Error, stored.Message);
            context.Log.Write("system", $"attempt {attempt} failed: {stored.Message}");
            if (error is StepFailedException { Retryable: false } || attempt >= retry.Attempts)
            {
                await logs.FlushAsync();
                await leases.FinishAsync(running.RunId, definition.Name, attempt, StepState.Failed, null, stored, context.Details.AsReadOnly(), CancellationToken.None);
                // The fault travels in the routing slip: it carries the masked message, not the exception.
                return new Outcome(Ending.Failed, Error: stored.Message == error.Message ? error : new StepFailedException(stored.Message, stored.Kind));
            }
            var delay = WithJitter(retry.DelayBefore(attempt + 1));
            context.Log.Write("system", $"retrying in {new Duration(delay)} (attempt {attempt + 1} of {retry.Attempts})");
            await logs.FlushAsync();
            try
            {
                await Task.Delay(delay, running.Token);
            }
            catch (OperationCanceledException exception)
            {
                return await EndCancelledAsync(running, context, exception);
            }
            if (!await leases.RetryAsync(running.RunId, definition.Name, attempt, stored, CancellationToken.None))
            {
                return new Outcome(Ending.Cancelled, Error: error);
            }
            running.Attempt = attempt + 1;
        }
    }

    private async Task<Outcome> EndCancelledAsync(RunningStep running, StepContext context, Exception exception)
    {
        if (running.Reason == Ending.HandedBack)
        {
            await leases.GiveBackAsync(running.RunId, running.Step, context.Attempt, CancellationToken.None);
            return new Outcome(Ending.HandedBack);
        }
        await leases.FinishAsync(running.RunId, running.Step, context.Attempt, StepState.Cancelled, null,
            new StepError("cancelled", "the run was cancelled"), context.Details.AsReadOnly(), CancellationToken.None);
        return new Outcome(Ending.Cancelled, Error: exception);
    }

    private async Task KeepLeaseAsync(RunningStep running)
    {
        var interval = _options.LeaseDuration / 3;
        try
        {
            while (true)
            {
                await Task.Delay(interval, running.HeartbeatToken);
                var state = await leases.RenewAsync(running.RunId, running.Step, running.Attempt, running.HeartbeatToken);
                if (state is null or RunState.Cancelled)
                {
                    running.Cancel(Ending.Cancelled);
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
        catch (Exception exception)
        {
            // A database outage: the lease may expire and the step be taken over; say so.
            LogHeartbeatFailed(exception, running.RunId, running.Step);
        }
    }

    private async Task<IReadOnlyDictionary<string, JsonNode?>> InputsAsync(ExecuteContext<StepArguments> context, Guid runId, StepDefinition definition)
    {
        var inputs = new Dictionary<string, JsonNode?>(StringComparer.Ordinal);
        var missing = new List<string>();
        foreach (var dependency in definition.DependsOn)
        {
            if (context.GetVariable<string>(RoutingSlipPlanner.OutputVariable(dependency)) is { } json)
            {
                inputs[dependency] = JsonNode.Parse(json);
            }
            else
            {
                missing.Add(dependency);
            }
        }
        if (missing.Count > 0)
        {
            foreach (var (step, json) in await leases.OutputsAsync(runId, missing))
            {
                inputs[step] = json is null ? null : JsonNode.Parse(json);
            }
        }
        return inputs;
    }

    private static Dictionary<string, object> OutputVariables(string step, string? output) =>
        new() { [RoutingSlipPlanner.OutputVariable(step)] = output ?? "null" };

    private static Dictionary<string, object> DetachedVariables(string step) =>
        new() { [RoutingSlipPlanner.DetachedStepVariable] = step };

    private static TimeSpan WithJitter(TimeSpan delay) => delay * (1 + (Random.Shared.NextDouble() * 0.2));

    private static string Describe(StepDefinition step) =>
        step.Handler is { } handler ? $"handler '{handler}' is not registered in this worker" : "container steps need a worker with a Docker engine";

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>Gives in-flight steps the grace period to finish, then hands the rest back.</summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        var deadline = DateTimeOffset.UtcNow + _options.GracePeriod;
        while (!_running.IsEmpty && DateTimeOffset.UtcNow < deadline && !cancellationToken.IsCancellationRequested)
        {
            await Task.Delay(TimeSpan.FromMilliseconds(100), CancellationToken.None);
        }
        foreach (var step in _running.Values)
        {
            step.Cancel(Ending.HandedBack);
        }
        var handBack = DateTimeOffset.UtcNow + TimeSpan.FromSeconds(10);
        while (!_running.IsEmpty && DateTimeOffset.UtcNow < handBack)
        {
            await Task.Delay(TimeSpan.FromMilliseconds(50), CancellationToken.None);
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Run {RunId}: step '{Step}' not run: {Reason}")]
    private partial void LogNotRunning(Guid runId, string step, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Run {RunId}: step '{Step}' is running under a lease held until {LeaseExpiresAt}; this delivery waits for it to finish or lapse")]
    private partial void LogWaitingForLease(Guid runId, string step, DateTimeOffset leaseExpiresAt);

    [LoggerMessage(Level = LogLevel.Information, Message = "Run {RunId}: step '{Step}' ran longer than {Hold}; it goes on detached from its message")]
    private partial void LogDetached(Guid runId, string step, TimeSpan hold);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Run {RunId}: step '{Step}' attempt {Attempt} finished after this worker lost its lease; the result of the new owner stands")]
    private partial void LogLostLease(Guid runId, string step, int attempt);

    [LoggerMessage(Level = LogLevel.Error, Message = "Run {RunId}: could not report detached step '{Step}'")]
    private partial void LogDetachedReportFailed(Exception exception, Guid runId, string step);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Run {RunId}: lease renewal of step '{Step}' failed")]
    private partial void LogHeartbeatFailed(Exception exception, Guid runId, string step);

    /// <summary>A step running on this worker, and how to stop it.</summary>
    private sealed class RunningStep(Guid runId, string step, int attempt) : IDisposable
    {
        private readonly CancellationTokenSource _cancellation = new();
        private readonly CancellationTokenSource _heartbeat = new();

        public Guid RunId { get; } = runId;
        public string Step { get; } = step;
        public int Attempt { get; set; } = attempt;
        public Ending Reason { get; private set; } = Ending.HandedBack;
        public CancellationToken Token => _cancellation.Token;
        public CancellationToken HeartbeatToken => _heartbeat.Token;

        public void Cancel(Ending reason)
        {
            if (!_cancellation.IsCancellationRequested)
            {
                Reason = reason;
                _cancellation.Cancel();
            }
        }

        public async Task StopHeartbeatAsync(Task heartbeat)
        {
            await _heartbeat.CancelAsync();
            await heartbeat;
        }

        public void Dispose()
        {
            _cancellation.Dispose();
            _heartbeat.Dispose();
        }
    }
}
