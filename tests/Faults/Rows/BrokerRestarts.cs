using System.Globalization;
using System.Text.Json.Nodes;
using Pipelines.Core.Planning;
using Pipelines.Faults.Engine;
using Pipelines.Faults.Recording;
using Pipelines.Faults.Report;
using Pipelines.Faults.Services;

namespace Pipelines.Faults.Rows;

/// <summary>
/// Fault 3: the RabbitMQ node killed (SIGKILL to the Erlang VM) and started again, several times,
/// while runs keep being started. Calls made while it is down must not be acknowledged as accepted;
/// every run that was accepted (or stored by a call that could not tell) must still finish.
/// </summary>
internal sealed class BrokerRestarts : IRow
{
    private static readonly TimeSpan UpTolerance = TimeSpan.FromMilliseconds(250);

    public string Id => "broker";

    public string Title => "3. RabbitMQ killed and restarted under load";

    public RowKind Kind => RowKind.Fault;

    public string Bar => "0 lost; the API answers 503, not 2xx, while it is down; time to reconnect";

    private sealed record Outage(DateTimeOffset Down, DateTimeOffset Up, TimeSpan Boot, TimeSpan? FirstAccepted, TimeSpan ConsumersBack);

    public async Task<RowResult> RunAsync(Cluster cluster, FaultOptions options, CancellationToken cancellationToken)
    {
        var outages = options.Pick(3, 2);
        var downFor = options.Pick(TimeSpan.FromSeconds(15), TimeSpan.FromSeconds(5));
        var between = options.Pick(TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(15));
        const double PerSecond = 5;
        var callTimeout = TimeSpan.FromSeconds(10);

        await using var deployment = await Deployment.CreateAsync(cluster, "broker", WorkerKillLoop.Definitions);
        await deployment.StartCoordinatorAsync();
        deployment.StartWorker("worker-1");
        deployment.StartWorker("worker-2");
        var handlerQueue = StepQueues.ForHandler("demo.sleep");
        await deployment.WaitForConsumersAsync(handlerQueue, 2);
        using var api = await ApiEndpoint.StartAsync(deployment);

        var calls = new CallLog();
        using var stopLoad = new CancellationTokenSource();
        var start = api.Starter("join3", () => new JsonObject { ["sleep_ms"] = 50 });
        cluster.Say($"broker: {PerSecond} runs/s; {outages} outages of {downFor.TotalSeconds:0} s, {between.TotalSeconds:0} s apart");
        var load = Load.RunAsync(calls, start, int.MaxValue, PerSecond, callTimeout, stopLoad.Token, ApiEndpoint.Refused);
        var seen = new List<Outage>();
        for (var i = 0; i < outages; i++)
        {
            await Task.Delay(between, cancellationToken);
            await cluster.Rabbit.KillAsync();
            // From here the node is gone (its port closed): a call that started earlier may have been confirmed.
            var down = DateTimeOffset.UtcNow;
            await Task.Delay(downFor, cancellationToken);
            var boot = await cluster.Rabbit.StartAgainAsync();
            var up = cluster.Rabbit.ListeningSince;
            int handlerConsumers = 0, coordinatorConsumers = 0;
            try
            {
                await Shell.WaitUntilAsync(async () =>
                {
                    handlerConsumers = await cluster.Rabbit.ConsumersAsync(deployment.Vhost, handlerQueue);
                    coordinatorConsumers = await cluster.Rabbit.ConsumersAsync(deployment.Vhost, StepQueues.Coordinator);
                    return handlerConsumers >= 2 && coordinatorConsumers >= 1;
                }, TimeSpan.FromMinutes(3), "consumers back after the broker restart");
            }
            catch (TimeoutException timeout)
            {
                throw new TimeoutException($"{timeout.Message}: at the end {handlerConsumers} of 2 on {handlerQueue}, {coordinatorConsumers} of 1 on {StepQueues.Coordinator}", timeout);
            }
            var consumersBack = DateTimeOffset.UtcNow - up;
            seen.Add(new Outage(down, up, boot, null, consumersBack));
            cluster.Say($"broker: outage {i + 1} healed: boot {RowResult.Seconds(boot)}, consumers back {RowResult.Seconds(consumersBack)}");
        }
        await Task.Delay(between, cancellationToken);
        await stopLoad.CancelAsync();
        await load;
        // First accepted start after each restart, now that the load has ended.
        seen = [.. seen.Select(o => o with
        {
            FirstAccepted = calls.Calls.Where(c => c.Outcome == CallOutcome.Ok && c.Started >= o.Up).Select(c => (TimeSpan?)(c.Started + c.Latency - o.Up)).Min(),
        })];

        var drained = await Reconciliation.DrainAsync(deployment.Store, () => Reconciliation.AcceptedAsync(deployment.Store, calls), TimeSpan.FromMinutes(3));
        var result = await Reconciliation.ComputeAsync(deployment.Store, calls, deployment.ReadLedger());
        bool During(Call c, Outage o) => c.Started >= o.Down && c.Started < o.Up;
        var duringOutage = calls.Calls.Where(c => seen.Any(o => During(c, o))).ToList();
        // The harness sees the port open up to a poll (50 ms) and a connect after a client may have reconnected.
        var acknowledgedWhileDown = duringOutage.Where(c => c.Outcome == CallOutcome.Ok && c.Started + c.Latency < seen.First(o => During(c, o)).Up - UpTolerance).ToList();
        var acceptedWhileDown = acknowledgedWhileDown.Count;
        var errors = duringOutage.Where(c => c.Error is not null).GroupBy(c => c.Error!).Select(g => $"{g.Key} ×{g.Count()}");
        // The coordinator's repairs of messages lost across the restarts (RunCoordinator.ResumeStalledChainsAsync).
        var slipsResent = deployment.CountLogLines("coordinator", "sending its slip again");
        var endsTaken = deployment.CountLogLines("coordinator", "its end never arrived");

        return RowResult.Of(this) with
        {
            Passed = result.Lost == 0 && result.DuplicateEffects == 0 && result.MissingEffects == 0 && result.FailedRuns == 0 && acceptedWhileDown == 0,
            Runs = result,
            Recovery = string.Create(CultureInfo.InvariantCulture,
                $"boot {RowResult.Seconds(seen.Max(o => o.Boot))}; reconnect (first start accepted) max {RowResult.Seconds(seen.Max(o => o.FirstAccepted))}; consumers back max {RowResult.Seconds(seen.Max(o => o.ConsumersBack))}"),
            Schedule = string.Create(CultureInfo.InvariantCulture,
                $"`join3` runs started at {PerSecond}/s with `POST /api/v1/runs` (an API process, `BrokerTimeout` 5 s; client timeout {callTimeout.TotalSeconds:0} s), coordinator in the harness, 2 workers; {outages}× SIGKILL to the broker's Erlang VM, down {downFor.TotalSeconds:0} s, then started again; {between.TotalSeconds:0} s of load between outages and after the last; drained in {RowResult.Seconds(drained)}."),
            Notes =
            [
                $"while the broker was down {duringOutage.Count} starts were posted to the API: {duringOutage.Count(c => c.Outcome == CallOutcome.Ok)} answered 201/200 (of them {acceptedWhileDown} more than {UpTolerance.TotalMilliseconds:0} ms before it listened again), the others {string.Join(", ", errors)}.",
                $"chains the coordinator's sweep found stalled (a message lost across a restart) and repaired: {slipsResent} slips sent again, {endsTaken} chain ends taken from their steps' states.",
                $"a 503 tells the client to retry with the same Idempotency-Key; the harness looked each one up by its key instead: {result.IndeterminateStored} of the {result.Indeterminate} unanswered or 503 starts had stored their run (it waited as pending and was started by the coordinator's sweep), the other {result.Indeterminate - result.IndeterminateStored} stored nothing.",
                .. acknowledgedWhileDown.Select(c =>
                {
                    var outage = seen.First(o => During(c, o));
                    return $"**acknowledged while down**: start {c.Index} posted {RowResult.Seconds(c.Started - outage.Down)} after the node was gone, answered 2xx {RowResult.Seconds(c.Latency)} later, {RowResult.Seconds(outage.Up - c.Started - c.Latency)} before the node answered again (run {c.RunId}; down at {outage.Down:HH:mm:ss.fff}, up at {outage.Up:HH:mm:ss.fff} UTC)";
                }),
                .. seen.Select((o, i) => $"outage {i + 1}: node listening {RowResult.Seconds(o.Boot)} after its start, first start accepted {RowResult.Seconds(o.FirstAccepted)} after it listened, all consumers back {RowResult.Seconds(o.ConsumersBack)} after it listened"),
            ],
        };
    }
}
