using System.Globalization;

namespace Pipelines.Bench.Benchmarks.Engine;

/// <summary>
/// The engine group's report: one markdown table of every target, a line on the idle worker, and
/// the targets of issue 3, each marked met or not.
/// </summary>
internal sealed class EngineReport(EngineSettings settings, string versions, IReadOnlyList<Measurement> measurements, IdleMeasurement idle)
{
    private const double MegaByte = 1_000_000;

    public void Write(TextWriter output)
    {
        output.WriteLine($"{BenchmarkRunner.Header()} · {versions}");
        output.WriteLine();
        output.WriteLine(
            $"Maximum throughput: {settings.Concurrency} runs in flight for {settings.Duration.TotalSeconds:0} s (after {settings.Warmup.TotalSeconds:0} s of warm-up). " +
            $"Latency: runs started at half that rate for {settings.LatencyDuration.TotalSeconds:0} s (at least 100 runs), " +
            "from the call that starts a run to its first step's start, and to its end.");
        output.WriteLine();
        output.WriteLine("| benchmark | steps/run | runs/s | steps/s | start → first step p50 | p99 | end to end p50 | p99 | latency at | worker memory (peak) | broker messages/run | commits/run | step cost vs MT hop | steps/s vs Hangfire |");
        output.WriteLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var m in measurements)
        {
            output.WriteLine(m.Error is not null ? $"| {m.Name} | failed: {m.Error.ReplaceLineEndings(" ")} |||||||||||||" : Row(m));
        }
        output.WriteLine();
        output.WriteLine(IdleLine());
        output.WriteLine();
        output.WriteLine("| target (issue 3) | measured | met |");
        output.WriteLine("|---|---|---|");
        foreach (var (target, measured, met) in Targets())
        {
            output.WriteLine($"| {target} | {measured} | {met switch { true => "yes", false => "**no**", null => "not measured" }} |");
        }
    }

    private string Row(Measurement m)
    {
        var hop = Find("masstransit");
        var hangfire = Find(m.Key == "engine-chain" ? "hangfire-chain" : "hangfire");
        return string.Join(" | ",
            $"| {m.Name}",
            m.StepsPerRun.ToString(CultureInfo.InvariantCulture),
            Number(m.Max!.PerSecond),
            Number(m.StepsPerSecond),
            BenchmarkRunner.Time(LoadDriver.Percentile(m.FirstStep, 0.50)),
            BenchmarkRunner.Time(LoadDriver.Percentile(m.FirstStep, 0.99)),
            BenchmarkRunner.Time(LoadDriver.Percentile(m.EndToEnd, 0.50)),
            BenchmarkRunner.Time(LoadDriver.Percentile(m.EndToEnd, 0.99)),
            $"{Number(m.LatencyRate)} runs/s",
            m.WorkerPeak is { } peak ? Megabytes(peak) : "—",
            m.Published is { } published ? PerRun(published, m) : "—",
            m.Database is { } database ? PerRun(database.Commits, m) : "—",
            hop is null ? "—" : Ratio(hop.StepsPerSecond / m.StepsPerSecond),
            hangfire is null ? "—" : Ratio(m.StepsPerSecond / hangfire.StepsPerSecond)) + " |";
    }

    private string IdleLine()
    {
        if (idle.Idle is not { } worker)
        {
            return $"Idle worker: failed: {idle.Error}";
        }
        return string.Create(CultureInfo.InvariantCulture,
            $"Idle worker, after {settings.Warmup.TotalSeconds:0} s of 1-step runs and 11 s for PostgreSQL's counters to catch up, as the only client of its database: " +
            $"{worker.TransactionsPerSecond:0.00} transactions/s over {worker.Window.TotalSeconds:0} s ({worker.Traffic.Commits + worker.Traffic.Rollbacks} transactions, " +
            $"{worker.Traffic.Returned} rows read; `pg_stat_database` `xact_commit` + `xact_rollback`; every statement runs in a transaction, so none means no statement), " +
            $"{worker.Connections} connection(s) kept open, working set {Megabytes(worker.WorkingSet)} ({Megabytes(idle.FreshWorkingSet!.Value)} just after start).");
    }

    private IEnumerable<(string Target, string Measured, bool? Met)> Targets()
    {
        var engines = measurements.Where(m => m.Key.StartsWith("engine-", StringComparison.Ordinal) && m.Error is null).ToList();
        var one = Find("engine-one-step");
        var chain = Find("engine-chain");
        var hangfire = Find("hangfire");
        var hangfireChain = Find("hangfire-chain");
        var hop = Find("masstransit");

        if (one is not null && hangfire is not null)
        {
            var ratio = one.Max!.PerSecond / hangfire.Max!.PerSecond;
            yield return ("≥ 5× Hangfire.PostgreSql's throughput: 1 step vs an empty job", Ratio(ratio), ratio >= 5);
        }
        if (chain is not null && hangfireChain is not null)
        {
            var ratio = chain.Max!.PerSecond / hangfireChain.Max!.PerSecond;
            yield return ("≥ 5× Hangfire.PostgreSql's throughput: 5-step chain vs 5-job continuation chain", Ratio(ratio), ratio >= 5);
        }
        if (hop is not null)
        {
            foreach (var engine in engines)
            {
                var cost = hop.StepsPerSecond / engine.StepsPerSecond;
                yield return ($"cost per step ≤ 2× a MassTransit hop: {engine.Name}", Ratio(cost), cost <= 2);
            }
        }
        if (engines.Count > 0)
        {
            var best = engines.MaxBy(e => e.StepsPerSecond)!;
            yield return ("≥ 1,000 handler steps/s, every step's state durable", $"{Number(best.StepsPerSecond)} steps/s at best ({best.Name})", best.StepsPerSecond >= 1000);
        }
        foreach (var engine in new[] { one, chain }.OfType<Measurement>().Where(e => e.Published is not null))
        {
            var perRun = (double)engine.Published!.Value / engine.Runs;
            yield return ($"≤ N+2 broker messages for an N-step chain: {engine.Name} (≤ {engine.StepsPerRun + 2})", PerRun(engine.Published.Value, engine), perRun <= engine.StepsPerRun + 2 + 0.005);
        }
        if (one?.Database is { } commits)
        {
            var perRun = (double)commits.Commits / one.Runs;
            yield return ("≤ 2 PostgreSQL commits for a 1-step pipeline", PerRun(commits.Commits, one), perRun <= 2.005);
        }
        yield return idle.Idle is { } worker
            ? ("≤ 1 statement/s from an idle worker", string.Create(CultureInfo.InvariantCulture, $"{worker.TransactionsPerSecond:0.00} transactions/s"), worker.TransactionsPerSecond <= 1)
            : ("≤ 1 statement/s from an idle worker", "failed", null);
        foreach (var engine in engines)
        {
            var p50 = LoadDriver.Percentile(engine.FirstStep, 0.50);
            var p99 = LoadDriver.Percentile(engine.FirstStep, 0.99);
            yield return ($"start → first step p50 < 5 ms, p99 < 25 ms at half the maximum rate: {engine.Name}",
                $"p50 {BenchmarkRunner.Time(p50)}, p99 {BenchmarkRunner.Time(p99)}", p50 < TimeSpan.FromMilliseconds(5) && p99 < TimeSpan.FromMilliseconds(25));
        }
        yield return idle.Idle is { } idleWorker
            ? ("idle worker < 150 MB working set", Megabytes(idleWorker.WorkingSet) + " after work, " + Megabytes(idle.FreshWorkingSet!.Value) + " fresh", idleWorker.WorkingSet < 150 * MegaByte)
            : ("idle worker < 150 MB working set", "failed", null);
    }

    private Measurement? Find(string key) => measurements.FirstOrDefault(m => m.Key == key && m.Error is null);

    private static string PerRun(long total, Measurement m) => string.Create(CultureInfo.InvariantCulture, $"{(double)total / m.Runs:0.00}");

    private static string Number(double value) => value.ToString(value < 100 ? "N1" : "N0", CultureInfo.InvariantCulture);

    private static string Ratio(double value) => string.Create(CultureInfo.InvariantCulture, $"{value:0.0#}×");

    private static string Megabytes(long bytes) => string.Create(CultureInfo.InvariantCulture, $"{bytes / MegaByte:0} MB");
}
