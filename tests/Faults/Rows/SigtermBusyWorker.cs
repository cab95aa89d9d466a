using System.Globalization;
using System.Text.Json.Nodes;
using Microsoft.EntityFrameworkCore;
using Pipelines.Core.Planning;
using Pipelines.Core.Runs;
using Pipelines.Faults.Engine;
using Pipelines.Faults.Recording;
using Pipelines.Faults.Report;
using Pipelines.Faults.Services;

namespace Pipelines.Faults.Rows;

/// <summary>
/// Fault 2: SIGTERM to a worker busy with steps that end within its grace period and steps that
/// cannot, while new runs keep arriving. The first must finish on it, the second be handed back and
/// finished by the other worker, and nothing delivered during the shutdown may be lost.
/// </summary>
internal sealed class SigtermBusyWorker : IRow
{
    private const string Definitions = """
        pipelines:
          slow:
            steps:
              - { name: work, handler: demo.sleep }
        """;

    private static readonly TimeSpan Grace = TimeSpan.FromSeconds(10);

    public string Id => "sigterm";

    public string Title => "2. SIGTERM to a busy worker";

    public RowKind Kind => RowKind.Fault;

    public string Bar => "in-flight steps finish or are handed back within the grace period; 0 lost";

    public async Task<RowResult> RunAsync(Cluster cluster, FaultOptions options, CancellationToken cancellationToken)
    {
        var (quick, lengthy) = options.Pick((8, 8), (4, 4));
        await using var deployment = await Deployment.CreateAsync(cluster, "sigterm", Definitions);
        deployment.WorkerEnvironment["Pipelines__Worker__GracePeriod"] = Grace.ToString("c");
        await deployment.StartCoordinatorAsync();
        deployment.StartWorker("worker-1");
        deployment.StartWorker("worker-2");
        await deployment.WaitForConsumersAsync(StepQueues.ForHandler("demo.sleep"), 2);

        var calls = new CallLog();
        Task<Guid> Start(string key, int sleep) => Load.Launcher(deployment.Launcher, "slow", () => new JsonObject { ["sleep_ms"] = sleep })(key, cancellationToken);
        var busy = await Task.WhenAll(Enumerable.Range(0, quick + lengthy).Select(i => calls.RecordAsync(key => Start(key, i < quick ? 4_000 : 30_000))));
        var ids = busy.Select(c => c.RunId!.Value).ToList();
        await Shell.WaitUntilAsync(async () => await deployment.Store.ReadAsync(c => c.Steps.CountAsync(s => ids.Contains(s.RunId) && s.State == StepState.Running)) == ids.Count,
            TimeSpan.FromSeconds(60), "every busy step running");
        var owners = await deployment.Store.ReadAsync(c => c.Steps.Where(s => ids.Contains(s.RunId)).Select(s => s.LeaseOwner!).ToListAsync());
        var victim = deployment.Workers.MaxBy(w => owners.Count(o => o.StartsWith($"{w.Id}/", StringComparison.Ordinal)))!;
        var held = owners.Count(o => o.StartsWith($"{victim.Id}/", StringComparison.Ordinal));
        cluster.Say($"sigterm: {victim.Id} holds {held} of {ids.Count} running steps; SIGTERM, grace {Grace.TotalSeconds:0} s");

        var signalled = DateTimeOffset.UtcNow;
        // Runs keep arriving while the worker stops: deliveries it gets now must go back, not be lost.
        using var arrivals = new CancellationTokenSource();
        var load = Load.RunAsync(calls, (key, token) => Load.Launcher(deployment.Launcher, "slow", () => new JsonObject { ["sleep_ms"] = 200 })(key, token),
            int.MaxValue, 2, TimeSpan.FromSeconds(30), arrivals.Token);
        var (exitCode, took) = await victim.TerminateAsync(Grace + TimeSpan.FromSeconds(30));
        await arrivals.CancelAsync();
        await load;

        var drained = await Reconciliation.DrainAsync(deployment.Store, () => Reconciliation.AcceptedAsync(deployment.Store, calls), TimeSpan.FromMinutes(2));
        var result = await Reconciliation.ComputeAsync(deployment.Store, calls, deployment.ReadLedger());
        var prefix = $"{victim.Id}/{victim.ProcessId}/";
        var attempts = await deployment.Store.ReadAsync(c => c.Attempts.Where(a => ids.Contains(a.RunId)).ToListAsync());
        var victims = attempts.Where(a => a.Worker.StartsWith(prefix, StringComparison.Ordinal) && a.StartedAt < signalled).ToList();
        var finished = victims.Count(a => a.State == StepState.Succeeded);
        var handedBack = victims.Where(a => a.ErrorKind == "handed-back").ToList();
        var late = victims.Count(a => a.FinishedAt is not { } end || end - signalled > Grace + TimeSpan.FromSeconds(2));
        var redispatch = handedBack
            .Select(a => attempts.SingleOrDefault(n => n.RunId == a.RunId && n.Step == a.Step && n.Number == a.Number + 1)?.StartedAt - a.FinishedAt)
            .OfType<TimeSpan>().ToList();
        var unaccounted = victims.Count - finished - handedBack.Count;

        return RowResult.Of(this) with
        {
            Passed = exitCode == 0 && late == 0 && unaccounted == 0 && result.Lost == 0 && result.DuplicateEffects == 0 && result.FailedRuns == 0 && redispatch.Count == handedBack.Count,
            Runs = result,
            Recovery = string.Create(CultureInfo.InvariantCulture, $"exit after {RowResult.Seconds(took)}; hand-back to restart max {RowResult.Seconds(redispatch.Count == 0 ? null : redispatch.Max())}"),
            Schedule = string.Create(CultureInfo.InvariantCulture,
                $"{quick} runs of a 4 s step and {lengthy} of a 30 s step over 2 workers (grace period {Grace.TotalSeconds:0} s); SIGTERM to the worker holding the most ({victim.Id}, {held} steps) once all ran, while 2 runs/s of a 200 ms step kept arriving until it exited; drained in {RowResult.Seconds(drained)}."),
            Notes =
            [
                $"{victim.Id} exited with code {exitCode} {RowResult.Seconds(took)} after SIGTERM; of its {victims.Count} running attempts {finished} finished on it, {handedBack.Count} were handed back, {unaccounted} neither; {late} ended later than the grace period + 2 s.",
                $"handed-back steps restarted on the other worker {RowResult.Seconds(redispatch.Count == 0 ? null : redispatch.Min())} to {RowResult.Seconds(redispatch.Count == 0 ? null : redispatch.Max())} after the hand-back.",
            ],
        };
    }
}
