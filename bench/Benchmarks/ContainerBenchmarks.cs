using System.ComponentModel;
using System.Diagnostics;
using System.Formats.Tar;
using System.Globalization;
using System.Text.Json.Nodes;
using Docker.DotNet;
using Docker.DotNet.Models;
using Microsoft.Extensions.Logging.Abstractions;
using MsOptions = Microsoft.Extensions.Options.Options;
using Pipelines.Core.Definitions;
using Pipelines.Core.Execution;
using Pipelines.Workers.Containers;

namespace Pipelines.Bench.Benchmarks;

/// <summary>
/// Container steps on the local Docker engine (issue 4). The time of one step that runs <c>true</c>
/// in the test image, through the worker's executor (create, inputs in, attach, start, wait, output
/// out, remove), with and without its network pool, against the <c>docker</c> CLI running the same
/// image: <c>docker run --rm</c> as it comes, with the executor's sandbox, and doing the step's whole
/// contract (inputs and output copied). Samples are interleaved, one step at a time, so that every
/// way sees the same machine: p50, p99, max. Then the containers per minute one worker sustains at 2
/// and 4 steps at once, in interleaved windows. Needs the engine and image of
/// <c>eval "$(bash eng/services.sh up)"</c> and fails (exit code 3) without them; the CLI rows need the
/// <c>docker</c> command (apt package docker.io). About 8 minutes at the default settings.
/// </summary>
internal sealed class ContainerBenchmarks : IReportGroup
{
    private const int PoolSize = 2;
    private static readonly TimeSpan Settle = TimeSpan.FromMilliseconds(250);
    private static readonly int[] Concurrency = [2, 4];

    private static string Image => Environment.GetEnvironmentVariable("PIPELINES_TEST_IMAGE") is { Length: > 0 } image ? image : "pipelines-test/busybox:latest";

    /// <summary>The executor's sandbox as <c>docker run</c> flags, at the default settings of <see cref="ContainerOptions"/>.</summary>
    private static readonly string[] SandboxFlags =
    [
        "--network", "none", "--user", "65534:65534", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
        "--read-only", "--tmpfs", "/tmp:rw,nosuid,nodev,size=64m,mode=1777", "--tmpfs", "/work:rw,nosuid,nodev,size=64m,uid=65534,gid=65534,mode=0700",
        "--ipc", "private", "--memory", "512m", "--memory-swap", "512m", "--cpus", "1", "--pids-limit", "256", "--workdir", "/work",
        "--mount", "type=volume,target=/pipelines",
    ];

    public string Name => "containers";

    public IReadOnlyList<BenchmarkOption> Options { get; } =
    [
        new("step-samples", 100, "containers: steps timed per way, one at a time, interleaved"),
        new("load-seconds", 10, "containers: seconds of each window of sustained load"),
        new("load-rounds", 3, "containers: windows of sustained load per way and number of steps at once"),
    ];

    public int Run(IReadOnlyDictionary<string, int> options, TextWriter output, TextWriter progress)
    {
        var worker = $"bench-{Guid.NewGuid():N}"[..18];
        using var engine = new ContainerEngine(MsOptions.Create(Settings(worker, PoolSize)));
        if (Unavailable(engine) is { } reason)
        {
            progress.WriteLine($"containers: {reason}; start it with: eval \"$(bash eng/services.sh up)\"");
            return 3;
        }
        var step = Step();
        var cli = DockerCli.IsInstalled();
        if (!cli)
        {
            progress.WriteLine("containers: no docker command (apt package docker.io); the CLI rows are left out");
        }
        output.WriteLine($"{BenchmarkRunner.Header()} · Docker engine {engine.Client.System.GetVersionAsync().GetAwaiter().GetResult().Version}");
        output.WriteLine();
        using (var executors = new Executors(worker, PoolSize))
        {
            var ways = executors.Ways(step, "executor: create, inputs, start, logs, wait, output, remove");
            if (cli)
            {
                ways.Add(new("docker run --rm", () => DockerCli.RunAsync(["run", "--rm", Image, "true"])));
                ways.Add(SandboxedRun);
                ways.Add(new("docker create, cp in, start -a, cp out, rm: sandbox and contract", () => RunContractAsync(worker)));
            }
            MeasureLatency(ways, options["step-samples"], output, progress);
        }
        output.WriteLine();
        MeasureThroughput(worker, step, cli, TimeSpan.FromSeconds(options["load-seconds"]), options["load-rounds"], output, progress);
        RequireNoneLeft(engine, worker);
        return 0;
    }

    private static Way SandboxedRun { get; } = new("docker run --rm, the executor's sandbox", () => DockerCli.RunAsync(["run", "--rm", .. SandboxFlags, Image, "true"]));

    /// <summary>One way of running the step; <see cref="Ready"/> waits, untimed, until it can run as it would when steps come one at a time.</summary>
    private sealed record Way(string Name, Func<Task> Run, Func<Task>? Ready = null);

    private static void MeasureLatency(List<Way> ways, int samples, TextWriter output, TextWriter progress)
    {
        var times = ways.ToDictionary(w => w, _ => new List<TimeSpan>());
        foreach (var way in ways)
        {
            way.Run().GetAwaiter().GetResult(); // warm-up, and a check that it works
        }
        progress.WriteLine($"containers: {samples} steps through each of {ways.Count} ways, one at a time");
        for (var i = 0; i < samples; i++)
        {
            // Rotated, so that no way always follows the same other.
            foreach (var way in ways.Skip(i % ways.Count).Concat(ways.Take(i % ways.Count)))
            {
                Thread.Sleep(Settle);
                way.Ready?.Invoke().GetAwaiter().GetResult();
                var started = Stopwatch.GetTimestamp();
                way.Run().GetAwaiter().GetResult();
                times[way].Add(Stopwatch.GetElapsedTime(started));
            }
        }
        output.WriteLine($"| one step that runs `true`, {samples} of each way, interleaved | p50 | p99 | max |");
        output.WriteLine("|---|---:|---:|---:|");
        foreach (var way in ways)
        {
            var sorted = times[way].Order().ToList();
            output.WriteLine($"| {way.Name} | {BenchmarkRunner.Time(Percentile(sorted, 0.50))} | {BenchmarkRunner.Time(Percentile(sorted, 0.99))} | {BenchmarkRunner.Time(sorted[^1])} |");
        }
    }

    /// <summary>
    /// For each number of steps at once: windows of each way in turn, rotated, for
    /// <paramref name="rounds"/> rounds, so that every way sees the same machine; containers finished
    /// per minute over all its windows.
    /// </summary>
    private static void MeasureThroughput(string worker, StepDefinition step, bool cli, TimeSpan window, int rounds, TextWriter output, TextWriter progress)
    {
        output.WriteLine($"| sustained: steps running `true`, {rounds} windows of {window.TotalSeconds:0} s per way, interleaved | at once | containers per minute |");
        output.WriteLine("|---|---:|---:|");
        foreach (var concurrency in Concurrency)
        {
            using var executors = new Executors(worker, poolSize: concurrency);
            var ways = executors.Ways(step, "executor");
            if (cli)
            {
                ways.Add(SandboxedRun);
            }
            var finished = ways.ToDictionary(w => w, _ => (Count: 0, Time: TimeSpan.Zero));
            progress.WriteLine($"containers: {concurrency} steps at once, {rounds} windows of each of {ways.Count} ways");
            for (var round = 0; round < rounds; round++)
            {
                foreach (var way in ways.Skip(round % ways.Count).Concat(ways.Take(round % ways.Count)))
                {
                    Thread.Sleep(Settle);
                    way.Ready?.Invoke().GetAwaiter().GetResult();
                    var (count, time) = Sustain(concurrency, window, way.Run);
                    finished[way] = (finished[way].Count + count, finished[way].Time + time);
                }
            }
            foreach (var way in ways)
            {
                var perMinute = finished[way].Count / finished[way].Time.TotalMinutes;
                output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| {way.Name} | {concurrency} | {perMinute:N0} |"));
            }
        }
    }

    /// <summary>Runs <paramref name="concurrency"/> loops for a window; the containers they finished and the time all took.</summary>
    private static (int Count, TimeSpan Time) Sustain(int concurrency, TimeSpan window, Func<Task> run)
    {
        var started = Stopwatch.GetTimestamp();
        var loops = Enumerable.Range(0, concurrency).Select(_ => Task.Run(async () =>
        {
            var done = 0;
            while (Stopwatch.GetElapsedTime(started) < window)
            {
                await run();
                done++;
            }
            return done;
        })).ToArray();
        var finished = Task.WhenAll(loops).GetAwaiter().GetResult().Sum();
        return (finished, Stopwatch.GetElapsedTime(started));
    }

    private static async Task RunStepAsync(ContainerStepExecutor executor, StepDefinition step)
    {
        var context = new StepContext
        {
            RunId = Guid.NewGuid(),
            Pipeline = "bench",
            Step = step.Name,
            Event = [],
            Inputs = new Dictionary<string, JsonNode?>(),
            Attempt = 1,
            Logger = NullLogger.Instance,
            CancellationToken = CancellationToken.None,
            Definition = step,
            Log = new DiscardedLog(),
            Secrets = new RevealedSecrets(new NoSecrets()),
        };
        await executor.ExecuteAsync(context);
        Require(context.Details.TryGetValue("exit_code", out var exit) && exit == "0", "the step exited with 0");
    }

    /// <summary>What the executor does, through the CLI: the sandbox, the inputs copied in, the log attached, the output copied out.</summary>
    private static async Task RunContractAsync(string worker)
    {
        var name = $"pipelines-bench-{Guid.NewGuid():N}";
        await DockerCli.RunAsync(["create", "--name", name, "--label", $"{ContainerLabels.Managed}=true", "--label", $"{ContainerLabels.Worker}={worker}", .. SandboxFlags, Image, "true"]);
        try
        {
            await DockerCli.RunAsync(["cp", "-", $"{name}:/pipelines"], Inputs());
            await DockerCli.RunAsync(["start", "--attach", name]);
            await DockerCli.RunAsync(["cp", $"{name}:/pipelines/output", "-"]);
        }
        finally
        {
            await DockerCli.RunAsync(["rm", "--force", "--volumes", name]);
        }
    }

    /// <summary>A tar of /pipelines/input (event.json, inputs.json; root, read-only) and /pipelines/output (the step's user), as the executor copies in.</summary>
    private static byte[] Inputs()
    {
        using var tar = new MemoryStream();
        using (var writer = new TarWriter(tar, TarEntryFormat.Pax, leaveOpen: true))
        {
            writer.WriteEntry(new PaxTarEntry(TarEntryType.Directory, "input") { Mode = (UnixFileMode)0b101_101_101 });
            foreach (var file in new[] { "input/event.json", "input/inputs.json" })
            {
                writer.WriteEntry(new PaxTarEntry(TarEntryType.RegularFile, file) { Mode = (UnixFileMode)0b100_100_100, DataStream = new MemoryStream("{}"u8.ToArray()) });
            }
            writer.WriteEntry(new PaxTarEntry(TarEntryType.Directory, "output") { Mode = (UnixFileMode)0b111_101_101, Uid = 65534, Gid = 65534 });
        }
        return tar.ToArray();
    }

    private static async Task WaitForPoolAsync(NetworkPool pool)
    {
        var since = Stopwatch.GetTimestamp();
        while (pool.Ready < pool.Size)
        {
            Require(Stopwatch.GetElapsedTime(since) < TimeSpan.FromSeconds(60), "the network pool filled up within 60 s");
            await Task.Delay(10);
        }
    }

    /// <summary>One worker's executor without and with its network pool, on an engine connection of its own.</summary>
    private sealed class Executors : IDisposable
    {
        private readonly ContainerEngine _engine;
        private readonly ContainerStepExecutor _plain;
        private readonly NetworkPool _pool;
        private readonly ContainerStepExecutor _pooled;

        public Executors(string worker, int poolSize)
        {
            _engine = new ContainerEngine(MsOptions.Create(Settings(worker, poolSize)));
            _plain = new ContainerStepExecutor(_engine, TimeProvider.System);
            _pool = new NetworkPool(_engine, TimeProvider.System, NullLogger<NetworkPool>.Instance);
            _pool.StartAsync(CancellationToken.None).GetAwaiter().GetResult();
            _pooled = new ContainerStepExecutor(_engine, TimeProvider.System, _pool);
        }

        /// <summary>The step through each executor; the pooled one starts with its pool full, as after a pause between steps.</summary>
        public List<Way> Ways(StepDefinition step, string plainName) =>
        [
            new(plainName, () => RunStepAsync(_plain, step)),
            new($"executor with a network pool of {_pool.Size}", () => RunStepAsync(_pooled, step), () => WaitForPoolAsync(_pool)),
        ];

        public void Dispose()
        {
            _pooled.Dispose();
            _pool.DisposeAsync().AsTask().GetAwaiter().GetResult();
            _plain.Dispose();
            _engine.Dispose();
        }
    }

    /// <summary>Default settings but the pool's holders: the test image has no pause program, so they sleep with its busybox.</summary>
    private static ContainerOptions Settings(string worker, int poolSize) => new()
    {
        WorkerId = worker,
        MaxConcurrentContainers = Concurrency.Max(),
        NetworkPool = new NetworkPoolOptions { Size = poolSize, Image = Image, Command = ["sleep", "2147483647"] },
    };

    private static StepDefinition Step()
    {
        var yaml = $"""
            pipelines:
              bench:
                steps:
                  - name: step
                    image: "{Image}"
                    command: ["true"]
            """;
        var result = new PipelineLoader(new PipelineLoaderOptions { Variables = new Dictionary<string, string>() })
            .Load(System.Text.Encoding.UTF8.GetBytes(yaml), "containers-bench.yaml", ".");
        Require(result.Succeeded, "the benchmark's step loads");
        return result.Definitions!.Pipelines["bench"].Steps[0];
    }

    private static string? Unavailable(ContainerEngine engine)
    {
        try
        {
            engine.Client.System.PingAsync().Wait(TimeSpan.FromSeconds(5));
            engine.Client.Images.InspectImageAsync(Image).GetAwaiter().GetResult();
            return null;
        }
        catch (DockerImageNotFoundException)
        {
            return $"the Docker engine at {engine.Endpoint} has no image {Image} (PIPELINES_TEST_IMAGE)";
        }
        catch (Exception e) when (e is AggregateException or DockerApiException or HttpRequestException or IOException or TimeoutException)
        {
            return $"no Docker engine answers at {engine.Endpoint}";
        }
    }

    private static void RequireNoneLeft(ContainerEngine engine, string worker)
    {
        var left = engine.Client.Containers.ListContainersAsync(new ContainersListParameters
        {
            All = true,
            Filters = new Dictionary<string, IDictionary<string, bool>> { ["label"] = new Dictionary<string, bool> { [$"{ContainerLabels.Worker}={worker}"] = true } },
        }).GetAwaiter().GetResult();
        Require(left.Count == 0, $"no container left by the benchmark's worker, found {left.Count}");
    }

    private static TimeSpan Percentile(List<TimeSpan> sorted, double fraction) =>
        sorted[Math.Min(sorted.Count - 1, (int)Math.Ceiling(fraction * sorted.Count) - 1)];

    private static void Require(bool condition, string what)
    {
        if (!condition)
        {
            throw new InvalidOperationException($"containers benchmark: expected {what}");
        }
    }

    private sealed class DiscardedLog : IStepLog
    {
        public void Write(string stream, string line, DateTimeOffset? timestamp = null)
        {
        }
    }

    private sealed class NoSecrets : ISecretResolver
    {
        public string? Resolve(string name) => null;
    }

    /// <summary>The <c>docker</c> command, for the comparison rows only: the worker itself never runs it.</summary>
    private static class DockerCli
    {
        public static bool IsInstalled()
        {
            try
            {
                RunAsync(["version", "--format", "{{.Client.Version}}"]).GetAwaiter().GetResult();
                return true;
            }
            catch (Win32Exception)
            {
                return false;
            }
        }

        /// <summary>Runs <c>docker ARGS</c>, feeding it <paramref name="input"/>; throws unless it exits with 0.</summary>
        public static async Task RunAsync(IReadOnlyList<string> arguments, byte[]? input = null)
        {
            var start = new ProcessStartInfo("docker")
            {
                RedirectStandardInput = input is not null,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            foreach (var argument in arguments)
            {
                start.ArgumentList.Add(argument);
            }
            using var process = Process.Start(start)!;
            var output = process.StandardOutput.BaseStream.CopyToAsync(Stream.Null);
            var error = process.StandardError.ReadToEndAsync();
            if (input is not null)
            {
                await process.StandardInput.BaseStream.WriteAsync(input);
                process.StandardInput.Close();
            }
            await Task.WhenAll(output, error, process.WaitForExitAsync());
            Require(process.ExitCode == 0, $"docker {string.Join(' ', arguments)} to exit with 0, not {process.ExitCode}: {(await error).Trim()}");
        }
    }
}
