using System.Globalization;
using System.Text.Json.Nodes;
using Microsoft.EntityFrameworkCore;
using Pipelines.Core.Planning;
using Pipelines.Faults.Engine;
using Pipelines.Faults.Recording;
using Pipelines.Faults.Report;

namespace Pipelines.Faults.Rows;

/// <summary>
/// Fault 1: runs of a 3-step DAG (two parallel steps and their join) over two worker processes,
/// one of them killed with SIGKILL at a steady interval and restarted a second later.
/// </summary>
internal sealed class WorkerKillLoop : IRow
{
    public const string Definitions = """
        pipelines:
          join3:
            steps:
              - { name: left, handler: demo.sleep }
              - { name: right, handler: demo.sleep }
              - { name: join, handler: demo.sleep, depends_on: [left, right] }
        """;

    public string Id => "kill9";

    public string Title => "1. worker `kill -9` loop";

    public RowKind Kind => RowKind.Fault;

    public string Bar => "0 lost; every re-execution a new attempt";

    public async Task<RowResult> RunAsync(Cluster cluster, FaultOptions options, CancellationToken cancellationToken)
    {
        var runs = options.Pick(2000, 200);
        var perSecond = options.Pick(8.0, 8.0);
        var killEvery = options.Pick(TimeSpan.FromSeconds(15), TimeSpan.FromSeconds(5));
        var random = new Random(options.Seed);
        var sleeps = Enumerable.Range(0, runs + 1).Select(_ => random.Next(50, 400)).ToArray();
        var next = -1;

        await using var deployment = await Deployment.CreateAsync(cluster, "kill9", Definitions);
        await deployment.StartCoordinatorAsync();
        EngineProcess[] slots = [deployment.StartWorker("worker-1"), deployment.StartWorker("worker-2")];
        await deployment.WaitForConsumersAsync(StepQueues.ForHandler("demo.sleep"), 2);

        var calls = new CallLog();
        var start = Load.Launcher(deployment.Launcher, "join3", () => new JsonObject { ["sleep_ms"] = sleeps[Interlocked.Increment(ref next) % sleeps.Length] });
        var kills = new List<(DateTimeOffset At, EngineProcess Victim)>();
        cluster.Say($"kill9: {runs} runs at {perSecond}/s, SIGKILL of a random worker every {killEvery.TotalSeconds:0} s");
        var load = Load.RunAsync(calls, start, runs, perSecond, TimeSpan.FromSeconds(30), cancellationToken);
        while (!load.IsCompleted)
        {
            await Task.WhenAny(load, Task.Delay(killEvery, cancellationToken));
            if (load.IsCompleted)
            {
                break;
            }
            var slot = random.Next(slots.Length);
            var victim = slots[slot];
            kills.Add((DateTimeOffset.UtcNow, victim));
            victim.Kill();
            await Task.Delay(TimeSpan.FromSeconds(1), cancellationToken);
            slots[slot] = deployment.StartWorker(victim.Id);
        }
        await load;
        var drained = await Reconciliation.DrainAsync(deployment.Store, () => Reconciliation.AcceptedAsync(deployment.Store, calls), options.Pick(TimeSpan.FromMinutes(5), TimeSpan.FromMinutes(2)));
        var result = await Reconciliation.ComputeAsync(deployment.Store, calls, deployment.ReadLedger());
        var takeovers = await TakeoversAsync(deployment, kills);
        var invisible = result.DuplicateEffects;

        return RowResult.Of(this) with
        {
            Passed = result.Lost == 0 && invisible == 0 && result.MissingEffects == 0 && result.FailedRuns == 0,
            Runs = result,
            Recovery = takeovers.Count == 0 ? "no step lost" : $"takeover p50 {RowResult.Seconds(Median(takeovers))}, max {RowResult.Seconds(takeovers.Max())}",
            Schedule = string.Create(CultureInfo.InvariantCulture,
                $"{runs:N0} runs of `join3` (left ∥ right → join, each `demo.sleep` 50-400 ms) started at {perSecond}/s over 2 worker processes; every {killEvery.TotalSeconds:0} s SIGKILL to a random worker, restarted 1 s later ({kills.Count} kills); lease {FaultOptions.LeaseDuration.TotalSeconds:0} s; drained in {RowResult.Seconds(drained)}."),
            Notes =
            [
                $"{takeovers.Count} steps were running on a killed worker; each was taken over as a new attempt (recovery = kill to the new attempt's end).",
                $"kills at: {string.Join(", ", kills.Select(k => $"{k.Victim.Id} +{(k.At - calls.Calls[0].Started).TotalSeconds:0}s"))}",
            ],
        };
    }

    /// <summary>For each attempt a killed worker lost: the time from the kill to the end of the attempt that replaced it.</summary>
    internal static async Task<List<TimeSpan>> TakeoversAsync(Deployment deployment, IReadOnlyList<(DateTimeOffset At, EngineProcess Victim)> kills)
    {
        var lost = await deployment.Store.ReadAsync(c => c.Attempts.Where(a => a.ErrorKind == "worker-lost").ToListAsync());
        var took = new List<TimeSpan>();
        foreach (var attempt in lost)
        {
            var kill = kills.FirstOrDefault(k => attempt.Worker.StartsWith($"{k.Victim.Id}/{k.Victim.ProcessId}/", StringComparison.Ordinal));
            if (kill.Victim is null)
            {
                continue;
            }
            var finished = await deployment.Store.ReadAsync(c => c.Attempts
                .Where(a => a.RunId == attempt.RunId && a.Step == attempt.Step && a.Number == attempt.Number + 1)
                .Select(a => a.FinishedAt).SingleOrDefaultAsync());
            if (finished is { } end)
            {
                took.Add(end - kill.At);
            }
        }
        return took;
    }

    internal static TimeSpan Median(IReadOnlyCollection<TimeSpan> values) => values.Order().ElementAt(values.Count / 2);
}
