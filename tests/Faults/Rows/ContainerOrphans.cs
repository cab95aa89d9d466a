using System.Diagnostics;
using System.Globalization;
using Pipelines.Core.Planning;
using Pipelines.Faults.Engine;
using Pipelines.Faults.Recording;
using Pipelines.Faults.Report;
using Pipelines.Faults.Services;

namespace Pipelines.Faults.Rows;

/// <summary>
/// Fault 7: a worker SIGKILLed while 20 of its container steps run. Its containers keep running on
/// the engine; they must be gone within 60 s once the same worker restarts (its start-up reaper), or
/// once another worker takes the steps over (each new attempt removes what its predecessor left).
/// Containers of someone else — unlabelled, or another worker's — are never touched.
/// </summary>
internal sealed class ContainerOrphans : IRow
{
    private const string Definitions = """
        pipelines:
          hold:
            steps:
              - name: hold
                image: ${IMAGE}
                timeout: 15m
                # The first attempt holds its containers until the worker dies; a takeover finishes at once.
                command: ["sh", "-c", "if [ \"$$PIPELINES_ATTEMPT\" = 1 ]; then sleep 900; fi; echo done"]
                sidecars:
                  - { name: side, image: "${IMAGE}", command: ["sleep", "900"] }
        """;

    private static readonly TimeSpan Bar60 = TimeSpan.FromSeconds(60);

    public string Id => "containers";

    public string Title => "7. worker killed with 20 containers running";

    public bool NeedsDocker => true;

    public RowKind Kind => RowKind.Fault;

    public string Bar => "0 orphans within 60 s after it or another worker restarts; unlabelled containers untouched";

    public async Task<RowResult> RunAsync(Cluster cluster, FaultOptions options, CancellationToken cancellationToken)
    {
        using var docker = new DockerHost();
        // Ten steps, each with a sidecar: 20 containers. (Twenty steps would not all run on one worker:
        // it takes at most 16 deliveries of a queue at once, whatever ConcurrencyPerQueue says; see the notes.)
        var runs = 10;
        var count = 2 * runs;
        var prefix = $"faults-{Guid.NewGuid():N}"[..15];
        await using var deployment = await Deployment.CreateAsync(cluster, "containers", Definitions.Replace("${IMAGE}", DockerHost.TestImage, StringComparison.Ordinal));
        foreach (var (key, value) in new Dictionary<string, string>
        {
            ["Pipelines__Containers__Enabled"] = "true",
            ["Pipelines__Containers__MaxConcurrentContainers"] = "24",
            ["Pipelines__Containers__DefaultMemory"] = "64m",
            ["Pipelines__Worker__ConcurrencyPerQueue"] = "24",
        })
        {
            deployment.WorkerEnvironment[key] = value;
        }
        await deployment.StartCoordinatorAsync();

        // Someone else's containers on the same engine: one without labels, one of another worker.
        var unlabelled = await docker.StartSleeperAsync($"{prefix}-unlabelled", new Dictionary<string, string>());
        var otherWorker = await docker.StartSleeperAsync($"{prefix}-other-worker", new Dictionary<string, string>
        {
            ["pipelines.managed"] = "true",
            ["pipelines.worker"] = $"{prefix}-other",
            ["pipelines.worker-instance"] = "another-process",
        });
        var calls = new CallLog();
        var notes = new List<string>();
        try
        {
            // Phase 1: the same worker restarts and its start-up reaper removes what its dead process left.
            var workerA = $"{prefix}-a";
            var victim = deployment.StartWorker(workerA);
            await deployment.WaitForConsumersAsync(StepQueues.Containers, 1);
            var (instance, started) = await HoldAsync(deployment, docker, calls, workerA, runs, count, cancellationToken);
            victim.Kill();
            var killed = DateTimeOffset.UtcNow;
            await Task.Delay(TimeSpan.FromSeconds(2), cancellationToken);
            deployment.StartWorker(workerA);
            var restarted = DateTimeOffset.UtcNow;
            var sameWorker = await UntilGoneAsync(docker, instance, Bar60 + TimeSpan.FromSeconds(30));
            notes.Add(string.Create(CultureInfo.InvariantCulture,
                $"same worker restarted: {count} containers running ({RowResult.Seconds(started)} to start them all); SIGKILL; restarted 2 s later; its containers gone {RowResult.Seconds(sameWorker.Gone)} after the restart ({RowResult.Seconds(restarted - killed + sameWorker.Gone)} after the kill), {sameWorker.Left} left after {Bar60.TotalSeconds:0} s"));
            await Reconciliation.DrainAsync(deployment.Store, () => Reconciliation.AcceptedAsync(deployment.Store, calls), TimeSpan.FromMinutes(2));

            // Phase 2: the worker dies for good; another worker takes its steps over and removes the leftovers.
            var restartedA = deployment.Workers[^1];
            var (instance2, started2) = await HoldAsync(deployment, docker, calls, workerA, runs, count, cancellationToken);
            deployment.StartWorker($"{prefix}-b");
            await deployment.WaitForConsumersAsync(StepQueues.Containers, 2);
            restartedA.Kill();
            var killed2 = DateTimeOffset.UtcNow;
            var otherTakesOver = await UntilGoneAsync(docker, instance2, Bar60 + TimeSpan.FromSeconds(30));
            notes.Add(string.Create(CultureInfo.InvariantCulture,
                $"another worker takes over: {count} containers running ({RowResult.Seconds(started2)}); SIGKILL, not restarted; the other worker's new attempts removed them all {RowResult.Seconds(otherTakesOver.Gone)} after the kill (lease {FaultOptions.LeaseDuration.TotalSeconds:0} s), {otherTakesOver.Left} left after {Bar60.TotalSeconds:0} s"));
            var drained = await Reconciliation.DrainAsync(deployment.Store, () => Reconciliation.AcceptedAsync(deployment.Store, calls), TimeSpan.FromMinutes(2));
            var result = await Reconciliation.ComputeAsync(deployment.Store, calls, deployment.ReadLedger(), ledgered: false);
            var untouched = await docker.ExistsAsync(unlabelled);
            var otherUntouched = await docker.ExistsAsync(otherWorker);
            notes.Add($"the unlabelled container {(untouched ? "is still there" : "**was removed**")}; the container labelled with another worker's id {(otherUntouched ? "is still there" : "**was removed**")}.");
            var leftover = (await docker.ListAsync(("pipelines.pipeline", "hold"))).Count(c => c.Labels.TryGetValue("pipelines.worker", out var w) && w.StartsWith(prefix, StringComparison.Ordinal));
            notes.Add($"after the row: {leftover} containers of its workers on the engine (their runs finished).");

            return RowResult.Of(this) with
            {
                Passed = sameWorker.Left == 0 && otherTakesOver.Left == 0 && untouched && otherUntouched && result.Lost == 0 && result.FailedRuns == 0,
                Runs = result,
                Recovery = $"orphans gone {RowResult.Seconds(sameWorker.Gone)} after restart / {RowResult.Seconds(otherTakesOver.Gone)} after kill (takeover)",
                Schedule = string.Create(CultureInfo.InvariantCulture,
                    $"{runs} runs of `hold` (a container step with a sidecar, both `sleep 900` in the first attempt: {count} containers) on one worker; SIGKILL once all {count} ran, then (1) the same worker id restarted, (2) again {count}, SIGKILL, and a second worker takes over; plus an unlabelled `sleep` container and one labelled with another worker's id on the same engine; drained in {RowResult.Seconds(drained)}."),
                Notes = notes,
            };
        }
        finally
        {
            deployment.StopWorkers();
            await docker.RemoveAsync(unlabelled);
            await docker.RemoveAsync(otherWorker);
            foreach (var container in await docker.ListAsync(("pipelines.pipeline", "hold")))
            {
                if (container.Labels.TryGetValue("pipelines.worker", out var worker) && worker.StartsWith(prefix, StringComparison.Ordinal))
                {
                    await docker.RemoveAsync(container.ID);
                }
            }
        }
    }

    /// <summary>Starts <paramref name="runs"/> runs and waits until their <paramref name="count"/> containers run under <paramref name="worker"/>; returns the worker process's instance label.</summary>
    private static async Task<(string Instance, TimeSpan Took)> HoldAsync(Deployment deployment, DockerHost docker, CallLog calls, string worker, int runs, int count, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        for (var i = 0; i < runs; i++)
        {
            await calls.RecordAsync(key => Load.Launcher(deployment.Launcher, "hold", () => null)(key, cancellationToken));
        }
        IList<Docker.DotNet.Models.ContainerListResponse> running = [];
        try
        {
            await Shell.WaitUntilAsync(async () =>
            {
                running = [.. (await docker.ListAsync(("pipelines.worker", worker))).Where(c => c.State == "running" && c.Labels["pipelines.attempt"] == "1")];
                return running.Select(c => c.Labels["pipelines.worker-instance"]).Distinct().Count() == 1 && running.Count == count;
            }, TimeSpan.FromMinutes(3), $"{count} containers running on {worker}", TimeSpan.FromMilliseconds(500));
        }
        catch (TimeoutException e)
        {
            throw new TimeoutException($"{e.Message}: {running.Count} running ({string.Join(", ", running.Select(c => c.Labels["pipelines.worker-instance"]).Distinct())})", e);
        }
        return (running[0].Labels["pipelines.worker-instance"], clock.Elapsed);
    }

    /// <summary>Waits until no container of the dead process <paramref name="instance"/> is left; returns when, and how many were left at 60 s.</summary>
    private static async Task<(TimeSpan? Gone, int Left)> UntilGoneAsync(DockerHost docker, string instance, TimeSpan wait)
    {
        var clock = Stopwatch.StartNew();
        int? atBar = null;
        while (clock.Elapsed < wait)
        {
            var left = (await docker.ListAsync(("pipelines.worker-instance", instance))).Count;
            if (left == 0)
            {
                return (clock.Elapsed, 0);
            }
            if (clock.Elapsed > Bar60)
            {
                atBar ??= left;
            }
            await Task.Delay(TimeSpan.FromMilliseconds(250));
        }
        return (null, atBar ?? -1);
    }
}
