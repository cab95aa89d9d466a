using System.Text.Json.Nodes;
using Microsoft.EntityFrameworkCore;
using Pipelines.Core.Planning;
using Pipelines.Core.Runs;
using Pipelines.Faults.Engine;
using Pipelines.Faults.Recording;
using Pipelines.Faults.Report;

namespace Pipelines.Faults.Rows;

/// <summary>
/// A minimal reproduction, not a row of the published table (<c>--rows repro-claim</c>): after
/// PostgreSQL restarts, the first steps a worker claims hit connections the restart broke, the claim
/// throws, the step's activity faults, and the run fails — with no attempt, no step error, the step
/// cancelled. A transient database error is not retried on the worker's step endpoints as it is on the
/// coordinator's (<c>UseMessageRetry</c> in PipelinesBuilder).
/// </summary>
internal sealed class ReproClaimAfterRestart : IRow
{
    /// <summary>One pipeline, <c>one</c>, of one handler step: the smallest deployment a reproduction needs.</summary>
    internal const string Definitions = """
        pipelines:
          one:
            steps:
              - { name: only, handler: demo.echo }
        """;

    public string Id => "repro-claim";

    public string Title => "repro: first claims after a PostgreSQL restart";

    public RowKind Kind => RowKind.Fault;

    public string Bar => "every run succeeds";

    public async Task<RowResult> RunAsync(Cluster cluster, FaultOptions options, CancellationToken cancellationToken)
    {
        await using var deployment = await Deployment.CreateAsync(cluster, "repro-claim", Definitions);
        await deployment.StartCoordinatorAsync();
        deployment.StartWorker("worker-1");
        await deployment.WaitForConsumersAsync(StepQueues.ForHandler("demo.echo"), 1);
        var calls = new CallLog();
        var start = Load.Launcher(deployment.Launcher, "one", () => new JsonObject());

        // 1. Warm the worker's connection pool: a few runs, all succeed.
        await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => calls.RecordAsync(key => start(key, cancellationToken))));
        await Reconciliation.DrainAsync(deployment.Store, () => Reconciliation.AcceptedAsync(deployment.Store, calls), TimeSpan.FromSeconds(60));
        // 2. Restart PostgreSQL: stop -m immediate, start at once.
        await cluster.Postgres.CrashAsync();
        await cluster.Postgres.StartAgainAsync();
        // 3. Start runs again (the coordinator retries its own transient errors; the worker does not).
        await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => calls.RecordAsync(key => start(key, cancellationToken))));
        await Reconciliation.DrainAsync(deployment.Store, () => Reconciliation.AcceptedAsync(deployment.Store, calls), TimeSpan.FromSeconds(60));

        var result = await Reconciliation.ComputeAsync(deployment.Store, calls, deployment.ReadLedger());
        var failed = await deployment.Store.ReadAsync(c => c.Runs.Where(r => r.State == RunState.Failed)
            .Select(r => new { r.Id, r.Error, Steps = r.Steps.Select(s => new { s.State, s.Attempts, s.ErrorMessage }).ToList() }).ToListAsync(cancellationToken));
        return RowResult.Of(this) with
        {
            Passed = result.FailedRuns == 0 && result.Lost == 0,
            Runs = result,
            Schedule = "8 runs of a one-step handler pipeline; `pg_ctl stop -m immediate`, `pg_ctl start`; 8 more runs. Worker log: `R-FAULT ... StepActivity ... NpgsqlException: Exception while reading from stream` in `StepLeases.TryClaimAsync`.",
            Notes = [.. failed.Select(f => $"run {f.Id}: failed with \"{f.Error}\"; its step {string.Join(", ", f.Steps.Select(s => $"{s.State} after {s.Attempts} attempts, error {s.ErrorMessage ?? "none"}"))}")],
        };
    }
}
