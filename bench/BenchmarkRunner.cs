using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;

namespace Pipelines.Bench;

/// <summary>
/// Runs the selected benchmarks and prints one markdown table: median and maximum wall time of the
/// measured runs, and the bytes the measuring thread allocated per run (median).
/// </summary>
internal static class BenchmarkRunner
{
    // Warm-up until the JIT has had time to re-compile hot methods at tier 1 (it waits ~100 ms
    // after the calls stop coming in tier 0, then compiles in the background).
    private const int MinWarmupRuns = 5;
    private const int MaxWarmupRuns = 1_000;
    private static readonly TimeSpan MinWarmupTime = TimeSpan.FromMilliseconds(2000);

    private const string Usage = """
        usage: dotnet run -c Release --project bench -- [GROUP...] [--iterations N] [--OPTION N...]

          GROUP               run only the groups whose name starts with GROUP (default: all)
          --iterations N      measured runs per benchmark instead of each benchmark's own count
        """;

    public static int Run(IReadOnlyList<IBenchmarkGroup> groups, IReadOnlyList<IReportGroup> reports, string[] args, TextWriter output, TextWriter progress)
    {
        var names = groups.Select(g => g.Name).Concat(reports.Select(r => r.Name)).ToList();
        var reportOptions = reports.SelectMany(r => r.Options).ToDictionary(o => "--" + o.Name, StringComparer.Ordinal);
        var settings = reports.SelectMany(r => r.Options).ToDictionary(o => o.Name, o => o.Default, StringComparer.Ordinal);
        var filters = new List<string>();
        int? iterations = null;
        for (var i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "-h" or "--help" or "-?":
                    output.WriteLine(Usage);
                    foreach (var option in reportOptions.Values)
                    {
                        output.WriteLine($"  --{option.Name} N".PadRight(22) + $"{option.Description} (default {option.Default})");
                    }
                    output.WriteLine();
                    output.WriteLine("groups: " + string.Join(", ", names));
                    return 0;
                case "--iterations":
                    if (WholeNumber(args, ++i, "--iterations", progress) is not { } n)
                    {
                        return 2;
                    }
                    iterations = n;
                    break;
                case var arg when reportOptions.TryGetValue(arg, out var option):
                    if (WholeNumber(args, ++i, arg, progress) is not { } value)
                    {
                        return 2;
                    }
                    settings[option.Name] = value;
                    break;
                case var arg when arg.StartsWith('-'):
                    progress.WriteLine($"error: unknown option '{arg}'");
                    progress.WriteLine(Usage);
                    return 2;
                default:
                    filters.Add(args[i]);
                    break;
            }
        }

        bool Selected(string name) => filters.Count == 0 || filters.Any(f => name.StartsWith(f, StringComparison.OrdinalIgnoreCase));
        var unmatched = filters.Where(f => !names.Any(n => n.StartsWith(f, StringComparison.OrdinalIgnoreCase))).ToList();
        if (unmatched.Count > 0)
        {
            progress.WriteLine($"error: no benchmark group matches {string.Join(", ", unmatched.Select(f => $"'{f}'"))}; groups: {string.Join(", ", names)}");
            return 2;
        }

        var selected = groups.Where(g => Selected(g.Name)).ToList();
        if (selected.Count > 0)
        {
            RunTimed(selected, iterations, output, progress);
        }
        var exitCode = 0;
        foreach (var (report, index) in reports.Where(r => Selected(r.Name)).Select((r, i) => (r, i)))
        {
            if (selected.Count > 0 || index > 0)
            {
                output.WriteLine();
            }
            var code = report.Run(settings, output, progress);
            exitCode = exitCode == 0 ? code : exitCode;
        }
        return exitCode;
    }

    private static int? WholeNumber(string[] args, int index, string option, TextWriter progress)
    {
        if (index < args.Length && int.TryParse(args[index], NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n >= 1)
        {
            return n;
        }
        progress.WriteLine($"error: {option} needs a whole number of at least 1");
        return null;
    }

    private static void RunTimed(List<IBenchmarkGroup> selected, int? iterations, TextWriter output, TextWriter progress)
    {
        output.WriteLine(Header());
        output.WriteLine();
        output.WriteLine("| group | benchmark | input | runs | median | max | allocated |");
        output.WriteLine("|---|---|---|---:|---:|---:|---:|");
        foreach (var group in selected)
        {
            progress.WriteLine($"{group.Name}: preparing inputs");
            foreach (var benchmark in group.Create())
            {
                progress.WriteLine($"{group.Name}: {benchmark.Name}, {benchmark.Input}");
                var runs = iterations ?? benchmark.Iterations;
                var (median, max, allocated) = Measure(benchmark, runs);
                output.WriteLine($"| {group.Name} | {benchmark.Name} | {benchmark.Input} | {runs} | {Time(median)} | {Time(max)} | {Bytes(allocated)} |");
            }
        }
    }

    private static (TimeSpan Median, TimeSpan Max, long Allocated) Measure(Benchmark benchmark, int runs)
    {
        benchmark.Check(benchmark.Run());
        var warmupStarted = Stopwatch.GetTimestamp();
        for (var i = 0; i < MaxWarmupRuns && (i < MinWarmupRuns || Stopwatch.GetElapsedTime(warmupStarted) < MinWarmupTime); i++)
        {
            GC.KeepAlive(benchmark.Run());
        }
        var times = new TimeSpan[runs];
        var allocations = new long[runs];
        for (var i = 0; i < runs; i++)
        {
            // Every run starts from a collected heap, so one run does not pay for the garbage of the last.
            GC.Collect();
            GC.WaitForPendingFinalizers();
            GC.Collect();
            var allocatedBefore = GC.GetAllocatedBytesForCurrentThread();
            var started = Stopwatch.GetTimestamp();
            var result = benchmark.Run();
            times[i] = Stopwatch.GetElapsedTime(started);
            allocations[i] = GC.GetAllocatedBytesForCurrentThread() - allocatedBefore;
            GC.KeepAlive(result);
        }
        Array.Sort(times);
        Array.Sort(allocations);
        return (times[runs / 2], times[^1], allocations[runs / 2]);
    }

    public static string Header()
    {
#if DEBUG
        const string configuration = "Debug build — figures are not representative, run with -c Release";
#else
        const string configuration = "Release";
#endif
        return $"Pipelines benchmarks · {RuntimeInformation.FrameworkDescription} · {RuntimeInformation.OSDescription} " +
               $"{RuntimeInformation.OSArchitecture} · {Environment.ProcessorCount} cores · {configuration}";
    }

    public static string Time(TimeSpan time) => time.TotalMilliseconds switch
    {
        < 1 => string.Create(CultureInfo.InvariantCulture, $"{time.TotalMicroseconds:0.0} µs"),
        < 10 => string.Create(CultureInfo.InvariantCulture, $"{time.TotalMilliseconds:0.00} ms"),
        < 1000 => string.Create(CultureInfo.InvariantCulture, $"{time.TotalMilliseconds:0.0} ms"),
        _ => string.Create(CultureInfo.InvariantCulture, $"{time.TotalSeconds:0.00} s"),
    };

    public static string Bytes(long bytes) => bytes switch
    {
        < 1024 => string.Create(CultureInfo.InvariantCulture, $"{bytes} B"),
        < 1024 * 1024 => string.Create(CultureInfo.InvariantCulture, $"{bytes / 1024.0:0.0} KiB"),
        _ => string.Create(CultureInfo.InvariantCulture, $"{bytes / (1024.0 * 1024):0.0} MiB"),
    };
}
