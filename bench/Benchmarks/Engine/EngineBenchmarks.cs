using Pipelines.Workers.Steps;

namespace Pipelines.Bench.Benchmarks.Engine;

/// <summary>
/// The engine on RabbitMQ and PostgreSQL against its peers on the same machine in the same run
/// (issue 3): RabbitMQ.Client alone, a plain MassTransit consumer hop, Hangfire.PostgreSql (an
/// empty job and a 5-job continuation chain), and the engine on a 1-step pipeline, a 5-step chain
/// and a diamond. For each: maximum throughput, latency at half of it, the worker's memory, and
/// broker messages and PostgreSQL commits per run; then an idle worker's database traffic. Needs
/// the services of <c>eng/services.sh</c> and fails (exit code 3) without them.
/// </summary>
internal sealed class EngineBenchmarks : IReportGroup
{
    /// <summary>Runs at half the maximum rate are at least this many, so that p99 is not just the maximum.</summary>
    private const int MinLatencyRuns = 100;
    private const int MaxLatencyRuns = 20_000;

    public string Name => "engine";

    public IReadOnlyList<BenchmarkOption> Options { get; } =
    [
        new("seconds", 8, "engine: seconds of load at maximum throughput, per benchmark"),
        new("latency-seconds", 5, $"engine: seconds of load at half the maximum rate, for latency (at least {MinLatencyRuns} runs)"),
        new("warmup-seconds", 2, "engine: seconds of load before measuring"),
        new("concurrency", 64, "engine: runs in flight while measuring maximum throughput"),
        new("idle-seconds", 10, "engine: seconds over which an idle worker's database traffic is counted"),
    ];

    public int Run(IReadOnlyDictionary<string, int> options, TextWriter output, TextWriter progress)
    {
        using var cancellation = new CancellationTokenSource();
        void OnCancel(object? sender, ConsoleCancelEventArgs e)
        {
            e.Cancel = true;
            cancellation.Cancel();
        }
        Console.CancelKeyPress += OnCancel;
        try
        {
            return RunAsync(new EngineSettings(options), output, progress, cancellation.Token).GetAwaiter().GetResult();
        }
        catch (OperationCanceledException) when (cancellation.IsCancellationRequested)
        {
            progress.WriteLine("engine: interrupted; scratch virtual hosts, databases and processes removed");
            return 130;
        }
        finally
        {
            Console.CancelKeyPress -= OnCancel;
        }
    }

    private static async Task<int> RunAsync(EngineSettings settings, TextWriter output, TextWriter progress, CancellationToken cancellationToken)
    {
        if (!File.Exists(WorkerProcess.Program))
        {
            progress.WriteLine($"engine: the worker program {WorkerProcess.Program} is missing; build the benchmark project, which references src/Workers");
            return 3;
        }
        var (services, problem) = await BenchServices.ConnectAsync(cancellationToken);
        if (services is null)
        {
            progress.WriteLine($"engine: needs RabbitMQ (with its management plugin) and PostgreSQL, and cannot reach:{Environment.NewLine}{problem}");
            progress.WriteLine("engine: start them with: eval \"$(bash eng/services.sh up)\"");
            return 3;
        }

        var directory = Directory.CreateTempSubdirectory("pipelines-bench-");
        // Hangfire's client is synchronous: without this, its concurrent callers would wait for the thread pool to grow.
        ThreadPool.GetMinThreads(out var minWorkers, out var minIo);
        ThreadPool.SetMinThreads(Math.Max(minWorkers, settings.Concurrency * 2), minIo);
        try
        {
            await using (services)
            {
                var definitions = EnginePipelines.Write(directory.FullName);
                var stepConcurrency = new WorkerOptions().ConcurrencyPerQueue;
                Func<BenchTarget>[] targets =
                [
                    () => new RawRabbitMqTarget(services, settings.Concurrency),
                    () => new MassTransitHopTarget(services, stepConcurrency),
                    () => new HangfireTarget(services, jobs: 1, stepConcurrency),
                    () => new HangfireTarget(services, jobs: EnginePipelines.Chain.Steps, stepConcurrency),
                    () => new EngineTarget(services, EnginePipelines.OneStep, definitions),
                    () => new EngineTarget(services, EnginePipelines.Chain, definitions),
                    () => new EngineTarget(services, EnginePipelines.Diamond, definitions),
                ];
                var measurements = new List<Measurement>();
                foreach (var create in targets)
                {
                    await using var target = create();
                    measurements.Add(await MeasureAsync(target, services, settings, progress, cancellationToken));
                }
                var idle = await MeasureIdleAsync(services, definitions, settings, progress, cancellationToken);

                progress.WriteLine("engine: waiting for the broker's statistics to settle");
                var published = await services.SettledPublishCountsAsync(measurements.Select(m => m.VirtualHost).OfType<string>(), cancellationToken);
                foreach (var measurement in measurements.Where(m => m.VirtualHost is not null))
                {
                    measurement.Published = published[measurement.VirtualHost!];
                }

                new EngineReport(settings, services.Versions, measurements, idle).Write(output);
                return measurements.Any(m => m.Error is not null) || idle.Error is not null ? 1 : 0;
            }
        }
        finally
        {
            ThreadPool.SetMinThreads(minWorkers, minIo);
            directory.Delete(recursive: true);
        }
    }

    private static async Task<Measurement> MeasureAsync(
        BenchTarget target, BenchServices services, EngineSettings settings, TextWriter progress, CancellationToken cancellationToken)
    {
        var measurement = new Measurement(target.Key, target.Name, target.StepsPerRun);
        try
        {
            progress.WriteLine($"engine: {target.Name}: preparing");
            await target.PrepareAsync(cancellationToken);
            measurement.VirtualHost = target.VirtualHost;
            var baseline = target.Database is { } database ? await services.SettledCountersAsync(database, cancellationToken) : null;
            await target.StartAsync(cancellationToken);

            await LoadDriver.SaturateAsync(target, settings.Concurrency, settings.Warmup, cancellationToken);
            measurement.Max = await LoadDriver.SaturateAsync(target, settings.Concurrency, settings.Duration, cancellationToken);
            measurement.LatencyRate = measurement.Max.PerSecond / 2;
            var runs = (int)Math.Clamp(measurement.LatencyRate * settings.LatencyDuration.TotalSeconds, MinLatencyRuns, MaxLatencyRuns);
            progress.WriteLine($"engine: {target.Name}: {measurement.Max.PerSecond:N0} runs/s; latency over {runs:N0} runs at {measurement.LatencyRate:N0} runs/s");
            var samples = await LoadDriver.PaceAsync(target, measurement.LatencyRate, runs, cancellationToken);

            await target.StopAsync(cancellationToken);
            measurement.WorkerPeak = target.WorkerPeakWorkingSet;
            measurement.Runs = target.Runs;
            if (baseline is not null)
            {
                measurement.Database = await services.SettledCountersAsync(target.Database!, cancellationToken) - baseline;
            }
            var latencies = await target.LatenciesAsync(samples, cancellationToken);
            measurement.FirstStep = [.. latencies.Select(l => l.FirstStep).Order()];
            measurement.EndToEnd = [.. latencies.Select(l => l.EndToEnd).Order()];
        }
        catch (Exception exception) when (!cancellationToken.IsCancellationRequested)
        {
            measurement.Error = exception.Message;
            progress.WriteLine($"engine: {target.Name} failed: {exception}");
        }
        return measurement;
    }

    /// <summary>A worker that has run steps for the warm-up time, then has nothing to do.</summary>
    private static async Task<IdleMeasurement> MeasureIdleAsync(
        BenchServices services, string definitions, EngineSettings settings, TextWriter progress, CancellationToken cancellationToken)
    {
        try
        {
            progress.WriteLine($"engine: idle worker: starting; {settings.Warmup.TotalSeconds:0} s of 1-step runs, then {settings.IdleWindow.TotalSeconds:0} s idle");
            await using var target = new EngineTarget(services, EnginePipelines.OneStep, definitions);
            await target.PrepareAsync(cancellationToken);
            await target.StartAsync(cancellationToken);
            await Task.Delay(TimeSpan.FromSeconds(2), cancellationToken);
            var fresh = target.WorkerWorkingSet;
            await LoadDriver.SaturateAsync(target, settings.Concurrency, settings.Warmup, cancellationToken);
            return new IdleMeasurement(fresh, await target.MeasureIdleAsync(settings.IdleWindow, cancellationToken), null);
        }
        catch (Exception exception) when (!cancellationToken.IsCancellationRequested)
        {
            progress.WriteLine($"engine: idle worker failed: {exception}");
            return new IdleMeasurement(null, null, exception.Message);
        }
    }
}

internal sealed record EngineSettings(int Concurrency, TimeSpan Duration, TimeSpan LatencyDuration, TimeSpan Warmup, TimeSpan IdleWindow)
{
    public EngineSettings(IReadOnlyDictionary<string, int> options)
        : this(options["concurrency"], TimeSpan.FromSeconds(options["seconds"]), TimeSpan.FromSeconds(options["latency-seconds"]),
            TimeSpan.FromSeconds(options["warmup-seconds"]), TimeSpan.FromSeconds(options["idle-seconds"]))
    {
    }
}

/// <summary>What was measured of one target; <see cref="Error"/> when it could not be.</summary>
internal sealed class Measurement(string key, string name, int stepsPerRun)
{
    /// <summary>The target's <see cref="BenchTarget.Key"/>.</summary>
    public string Key { get; } = key;
    public string Name { get; } = name;
    public int StepsPerRun { get; } = stepsPerRun;
    public Throughput? Max { get; set; }
    public double LatencyRate { get; set; }
    public IReadOnlyList<TimeSpan> FirstStep { get; set; } = [];
    public IReadOnlyList<TimeSpan> EndToEnd { get; set; } = [];
    public long? WorkerPeak { get; set; }
    public string? VirtualHost { get; set; }
    /// <summary>Messages published into the target's virtual host, over all <see cref="Runs"/>.</summary>
    public long? Published { get; set; }
    /// <summary>The target database's counters over all <see cref="Runs"/>.</summary>
    public DatabaseCounters? Database { get; set; }
    /// <summary>Every run: warm-up, maximum throughput and latency.</summary>
    public int Runs { get; set; }
    public string? Error { get; set; }

    public double StepsPerSecond => Max!.PerSecond * StepsPerRun;
}

/// <summary>The idle worker: working set just after start, and after work then idleness.</summary>
internal sealed record IdleMeasurement(long? FreshWorkingSet, IdleWorker? Idle, string? Error);
