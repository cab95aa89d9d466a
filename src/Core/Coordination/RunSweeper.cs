using MassTransit;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Pipelines.Core.Persistence;
using Pipelines.Core.Runs;
using Pipelines.Core.Telemetry;

namespace Pipelines.Core.Coordination;

/// <summary>Configuration section <c>Pipelines:Coordinator</c>.</summary>
public sealed class CoordinatorOptions
{
    /// <summary>How often the sweeper looks for unstarted runs and abandoned steps.</summary>
    public TimeSpan SweepInterval { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>
    /// How long a stored run may wait for its StartRun before the sweeper sends it again. Each resend
    /// waits as long as the run has already waited (up to 5 minutes), so a backlog of StartRun in the
    /// coordinator's queue is not swelled with copies while it drains.
    /// </summary>
    public TimeSpan PendingGrace { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// How long a dispatched chain may stay quiet (no step of it running or finishing), or a failed
    /// run's compensations (none running or ending), before the sweeper takes their slip, or the
    /// event of its end, for lost and repairs the run; doubled after each resend. A step or a
    /// compensation waiting in a long queue is sent twice at worst: harmless, each is claimed once.
    /// </summary>
    public TimeSpan StalledChainGrace { get; set; } = TimeSpan.FromMinutes(1);
}

/// <summary>
/// The coordinator's safety net, every few seconds: starts runs that were stored but whose
/// StartRun never arrived (the broker was down when they were accepted), dispatches again
/// detached steps whose worker stopped renewing its lease (killed, or handed the step back), and
/// repairs runs whose chain slip or chain end was lost on the way (see
/// <see cref="RunCoordinator.ResumeStalledChainsAsync"/>), or whose compensation slip or its end was
/// (<see cref="RunCoordinator.ResumeStalledCompensationsAsync"/>). Four queries per sweep: an idle
/// deployment stays quiet.
/// </summary>
public sealed partial class RunSweeper(RunStore store, RunCoordinator coordinator, IBus bus, IOptions<CoordinatorOptions> options, ILogger<RunSweeper> logger) : BackgroundService
{
    private static readonly TimeSpan MaxPendingWait = TimeSpan.FromMinutes(5);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.Value.SweepInterval);
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            try
            {
                await SweepAsync(stoppingToken);
            }
            catch (Exception exception) when (!stoppingToken.IsCancellationRequested)
            {
                LogSweepFailed(exception);
            }
        }
    }

    public async Task SweepAsync(CancellationToken cancellationToken)
    {
        var now = store.Now;
        var grace = options.Value.PendingGrace;
        var stalePending = now - grace;
        var pending = await store.ReadAsync(c => c.Runs
            .Where(r => r.State == RunState.Pending && (r.StartCheckAt == null ? r.CreatedAt < stalePending : r.StartCheckAt < now))
            .OrderBy(r => r.CreatedAt).Select(r => new { r.Id, r.Pipeline, r.TraceParent, r.CreatedAt }).Take(500).ToListAsync(cancellationToken));
        foreach (var run in pending)
        {
            var waited = now - run.CreatedAt;
            var wait = waited < grace ? grace : waited > MaxPendingWait ? MaxPendingWait : waited;
            LogResendingStart(run.Id, waited, wait);
            await RunLauncher.SendStartAsync(bus, "resend StartRun", run.Id, run.Pipeline, run.TraceParent, cancellationToken);
            // Only after a send that went through: while the broker is down every sweep tries again.
            var checkAt = now + wait;
            await store.WriteAsync(c => c.Runs
                .Where(r => r.Id == run.Id && r.State == RunState.Pending)
                .ExecuteUpdateAsync(set => set.SetProperty(r => r.StartCheckAt, checkAt), cancellationToken), cancellationToken);
        }

        var abandoned = await store.ReadAsync(c => c.Steps
            .Where(s => s.State == StepState.Running && s.Detached && s.LeaseExpiresAt < now)
            .Join(c.Runs, s => s.RunId, r => r.Id, (s, r) => new { s.RunId, s.Name, r.Pipeline, r.TraceParent })
            .Take(500).ToListAsync(cancellationToken));
        foreach (var step in abandoned)
        {
            using var trace = PipelinesTelemetry.StartRunActivity($"recover step {step.Name}", step.RunId, step.Pipeline, step.TraceParent);
            var actions = await coordinator.RecoverAbandonedStepAsync(step.RunId, step.Name, cancellationToken);
            await actions.ApplyAsync(bus, cancellationToken);
        }

        var stalled = await store.ReadAsync(c => c.Chains
            .Where(ch => ch.State == ChainState.Dispatched && (ch.StallCheckAt == null || ch.StallCheckAt < now))
            .Join(c.Runs.Where(r => r.State == RunState.Running || r.State == RunState.Failing), ch => ch.RunId, r => r.Id, (ch, r) => new { r.Id, r.Pipeline, r.TraceParent })
            .Distinct().Take(500).ToListAsync(cancellationToken));
        foreach (var run in stalled)
        {
            using var trace = PipelinesTelemetry.StartRunActivity("resume stalled chains", run.Id, run.Pipeline, run.TraceParent);
            var actions = await coordinator.ResumeStalledChainsAsync(run.Id, cancellationToken);
            await actions.ApplyAsync(bus, cancellationToken);
        }

        var compensating = await store.ReadAsync(c => c.Runs
            .Where(r => r.State == RunState.Compensating && (r.CompensationCheckAt == null || r.CompensationCheckAt < now))
            .Select(r => new { r.Id, r.Pipeline, r.TraceParent }).Take(500).ToListAsync(cancellationToken));
        foreach (var run in compensating)
        {
            using var trace = PipelinesTelemetry.StartRunActivity("resume stalled compensations", run.Id, run.Pipeline, run.TraceParent);
            var actions = await coordinator.ResumeStalledCompensationsAsync(run.Id, cancellationToken);
            await actions.ApplyAsync(bus, cancellationToken);
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Run {RunId} was stored {Waited} ago but not started; sending StartRun again, and again after {Wait} if it is still pending")]
    private partial void LogResendingStart(Guid runId, TimeSpan waited, TimeSpan wait);

    [LoggerMessage(Level = LogLevel.Error, Message = "The coordinator's sweep (pending runs, abandoned steps, stalled chains and compensations) failed; retrying")]
    private partial void LogSweepFailed(Exception exception);
}
