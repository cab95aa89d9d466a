using System.Diagnostics;

namespace Pipelines.Bench.Benchmarks.Engine;

/// <summary>The two ways the engine group loads a target: flat out, and at a fixed rate.</summary>
internal static class LoadDriver
{
    /// <summary>
    /// Maximum throughput: keeps <paramref name="concurrency"/> runs in flight (closed loop: each
    /// finished run starts the next) until <paramref name="duration"/> has passed, then lets the runs
    /// in flight finish. Runs per second is every run over the time to the last one's end.
    /// </summary>
    public static async Task<Throughput> SaturateAsync(BenchTarget target, int concurrency, TimeSpan duration, CancellationToken cancellationToken)
    {
        var completed = 0;
        var started = Stopwatch.GetTimestamp();
        async Task LoopAsync()
        {
            while (Stopwatch.GetElapsedTime(started) < duration)
            {
                await target.RunOnceAsync(cancellationToken);
                Interlocked.Increment(ref completed);
            }
        }

        await Task.WhenAll(Enumerable.Range(0, concurrency).Select(_ => Task.Run(LoopAsync, cancellationToken)));
        return new Throughput(completed, Stopwatch.GetElapsedTime(started));
    }

    /// <summary>
    /// Latency at a given load: starts <paramref name="count"/> runs at <paramref name="perSecond"/>
    /// without waiting for earlier ones (open loop, so a slow run does not slow the arrivals), and
    /// returns every run once all are done.
    /// </summary>
    public static async Task<IReadOnlyList<RunSample>> PaceAsync(BenchTarget target, double perSecond, int count, CancellationToken cancellationToken)
    {
        var runs = new List<Task<RunSample>>(count);
        var started = Stopwatch.GetTimestamp();
        for (var i = 0; i < count; i++)
        {
            var wait = TimeSpan.FromSeconds(i / perSecond) - Stopwatch.GetElapsedTime(started);
            if (wait > TimeSpan.FromMilliseconds(1))
            {
                await Task.Delay(wait, cancellationToken);
            }
            // Task.Run: a target's start may block (Hangfire's client is synchronous), which would delay the arrivals.
            runs.Add(Task.Run(() => target.RunOnceAsync(cancellationToken), cancellationToken));
        }
        return await Task.WhenAll(runs);
    }

    /// <summary>The nearest-rank percentile of sorted values.</summary>
    public static TimeSpan Percentile(IReadOnlyList<TimeSpan> sorted, double fraction) =>
        sorted[Math.Clamp((int)Math.Ceiling(fraction * sorted.Count) - 1, 0, sorted.Count - 1)];
}

internal sealed record Throughput(int Runs, TimeSpan Elapsed)
{
    public double PerSecond => Runs / Elapsed.TotalSeconds;
}
