using System.Globalization;
using System.Text.Json.Nodes;
using Microsoft.EntityFrameworkCore;
using Pipelines.Core.Planning;
using Pipelines.Faults.Engine;
using Pipelines.Faults.Recording;
using Pipelines.Faults.Report;
using Pipelines.Faults.Services;

namespace Pipelines.Faults.Rows;

/// <summary>
/// Fault 4: the broker's delivery acknowledgement timeout (<c>consumer_timeout</c>) cut to 10 s, and a
/// step far longer than that. The worker must detach the step from its delivery in time
/// (<c>Pipelines:Worker:HoldDeliveryFor</c> below the timeout, as documented), so the broker never
/// closes a channel, the step runs once, and the consumers are still there afterwards.
/// </summary>
internal sealed class ConsumerTimeout : IRow
{
    private const string Definitions = """
        pipelines:
          slow:
            steps:
              - { name: first, handler: demo.echo }
              - { name: sleepy, handler: demo.sleep, depends_on: [first] }
              - { name: last, handler: demo.echo, depends_on: [sleepy] }
        """;

    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan HoldDeliveryFor = TimeSpan.FromSeconds(5);

    public string Id => "consumer-timeout";

    public string Title => "4. `consumer_timeout` 10 s, one long step";

    public RowKind Kind => RowKind.Fault;

    public string Bar => "completes once; consumers stay alive";

    public async Task<RowResult> RunAsync(Cluster cluster, FaultOptions options, CancellationToken cancellationToken)
    {
        var step = options.Pick(TimeSpan.FromSeconds(60), TimeSpan.FromSeconds(25));
        var rabbit = cluster.Rabbit;
        // Node-wide, and read by each channel when it opens: set before the deployment opens its channels.
        await rabbit.EvalAsync($"application:set_env(rabbit, consumer_timeout, {(long)Timeout.TotalMilliseconds}).");
        await rabbit.EvalAsync("application:set_env(rabbit, channel_tick_interval, 1000).");
        try
        {
            await using var deployment = await Deployment.CreateAsync(cluster, "consumer-timeout", Definitions);
            // The fault is real: a consumer that never acknowledges loses its channel after the timeout.
            var (probeClosed, probeReason) = await AckTimeoutProbe.RunAsync(deployment.RabbitUri, Timeout + TimeSpan.FromSeconds(20));
            await Task.Delay(TimeSpan.FromSeconds(1), cancellationToken);
            var logBefore = TimeoutsLogged(rabbit.Folder);
            deployment.WorkerEnvironment["Pipelines__Worker__HoldDeliveryFor"] = HoldDeliveryFor.ToString("c");
            await deployment.StartCoordinatorAsync();
            deployment.StartWorker("worker-1");
            deployment.StartWorker("worker-2");
            var queue = StepQueues.ForHandler("demo.sleep");
            await deployment.WaitForConsumersAsync(queue, 2);

            var calls = new CallLog();
            var start = Load.Launcher(deployment.Launcher, "slow", () => new JsonObject { ["sleep_ms"] = (int)step.TotalMilliseconds });
            var run = await calls.RecordAsync(key => start(key, cancellationToken));
            cluster.Say($"consumer-timeout: a {step.TotalSeconds:0} s step under a {Timeout.TotalSeconds:0} s consumer_timeout");
            await Reconciliation.DrainAsync(deployment.Store, () => Reconciliation.AcceptedAsync(deployment.Store, calls), step + TimeSpan.FromMinutes(2));
            var consumersAfter = await rabbit.ConsumersAsync(deployment.Vhost, queue);
            var alive = deployment.Workers.Count(w => !w.HasExited);
            // The consumers still take work: a second, short run goes through.
            var second = await calls.RecordAsync(key => Load.Launcher(deployment.Launcher, "slow", () => new JsonObject { ["sleep_ms"] = 10 })(key, cancellationToken));
            await Reconciliation.DrainAsync(deployment.Store, () => Reconciliation.AcceptedAsync(deployment.Store, calls), TimeSpan.FromSeconds(60));
            var result = await Reconciliation.ComputeAsync(deployment.Store, calls, deployment.ReadLedger());
            var sleepy = await deployment.Store.ReadAsync(c => c.Attempts.Where(a => a.RunId == run.RunId && a.Step == "sleepy").ToListAsync());
            var executions = deployment.ReadLedger().Executions.Count(e => e.Run == run.RunId && e.Step == "sleepy");
            var closed = TimeoutsLogged(rabbit.Folder) - logBefore;
            var detached = await deployment.Store.ReadAsync(c => c.Steps.Where(s => s.RunId == run.RunId && s.Name == "sleepy").Select(s => s.Detached).SingleAsync());
            var took = await deployment.Store.ReadAsync(c => c.Runs.Where(r => r.Id == run.RunId).Select(r => r.FinishedAt - r.CreatedAt).SingleAsync());

            return RowResult.Of(this) with
            {
                Passed = probeClosed is not null && closed == 0 && result.Lost == 0 && result.FailedRuns == 0 && sleepy.Count == 1 && executions == 1 && alive == 2 && consumersAfter >= 2 && result.DuplicateEffects == 0,
                Runs = result,
                Recovery = string.Create(CultureInfo.InvariantCulture, $"run took {RowResult.Seconds(took)}; {consumersAfter} consumers after"),
                Schedule = string.Create(CultureInfo.InvariantCulture,
                    $"`consumer_timeout` {Timeout.TotalSeconds:0} s and `channel_tick_interval` 1 s set on the node before the deployment opened its channels; workers with `HoldDeliveryFor` {HoldDeliveryFor.TotalSeconds:0} s; one run of first → sleepy ({step.TotalSeconds:0} s) → last over 2 workers, then a second short run."),
                Notes =
                [
                    $"control: a plain AMQP consumer holding one delivery without acknowledging it had its channel closed by the broker after {RowResult.Seconds(probeClosed)} ({probeReason}).",
                    $"the long step ran {executions} time(s) in {sleepy.Count} attempt(s); it {(detached ? "detached from its delivery and reported by message" : "did not detach")}; the broker logged {closed} acknowledgement timeouts for the deployment's channels; {alive} of 2 workers alive and {consumersAfter} consumers on {queue} after it; the second run {(result.Succeeded == 2 ? "succeeded" : "did not succeed")} ({second.Outcome}).",
                ],
            };
        }
        finally
        {
            await rabbit.EvalAsync("application:set_env(rabbit, consumer_timeout, 1800000).");
            await rabbit.EvalAsync("application:set_env(rabbit, channel_tick_interval, 60000).");
        }
    }

    /// <summary>Lines in the node's log that say a channel was closed for an unacknowledged delivery.</summary>
    private static int TimeoutsLogged(string folder) => Directory.EnumerateFiles(Path.Combine(folder, "log"), "*.log")
        .Sum(file => File.ReadLines(file).Count(line => line.Contains("acknowledgement", StringComparison.Ordinal) && line.Contains("timed out", StringComparison.Ordinal)));
}
