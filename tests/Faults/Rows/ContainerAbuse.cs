using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Microsoft.EntityFrameworkCore;
using Pipelines.Core.Planning;
using Pipelines.Core.Runs;
using Pipelines.Faults.Engine;
using Pipelines.Faults.Recording;
using Pipelines.Faults.Report;
using Pipelines.Faults.Services;

namespace Pipelines.Faults.Rows;

/// <summary>
/// Hostile input: untrusted code in container steps under the worker's default sandbox (no
/// <c>resources</c>, no <c>network</c>, default settings) — a fork bomb, a memory hog, filling the
/// tmpfs folders, writing to <c>/</c>, connecting to the harness's broker and database ports,
/// <c>mount</c>, <c>unshare</c>, spinning past the timeout, 100 MB of stdout — all at once on one
/// worker, started through an API process that is polled all the while. Each abuse must be blocked
/// (the step's own report says it was refused), killed (the kernel or the step's timeout: its
/// container gone within the timeout + 2 s) or truncated (the stored log); the worker must carry on.
/// </summary>
internal sealed partial class ContainerAbuse : IRow
{
    private static readonly TimeSpan KillMargin = TimeSpan.FromSeconds(2);

    // Steps that end by themselves get a timeout they never reach.
    private static readonly TimeSpan Generous = TimeSpan.FromMinutes(2);

    private const string Attempt =
        "attempt() { name=$1; shift; if \"$@\" </dev/null >/dev/null 2>/tmp/abuse-err; then echo \"abuse: $name: ALLOWED\"; " +
        "else echo \"abuse: $name: refused: $(tail -n 1 /tmp/abuse-err)\"; fi; }\n";

    private const string NetworkProbe = Attempt + """
        for t in $TARGETS; do attempt "connect $t" nc -w 2 ${t%:*} ${t##*:}; done
        echo "abuse: interfaces: $(ls /sys/class/net | tr '\n' ' ')"
        """;

    private static readonly Abuse[] Abuses =
    [
        // It reads its pids cgroup with shell builtins (a fork would fail), and once forks have been
        // refused for a while it exits: the kernel kills the rest of the bomb with the container's init.
        new("fork-bomb", "`bomb() { bomb | bomb & }; bomb`, watched from inside until forks have been refused for 20 samples", TimedOut: false, """
            p=/sys/fs/cgroup/pids; [ -e $p/pids.current ] || p=/sys/fs/cgroup
            bomb() { bomb | bomb & }
            bomb 2>/dev/null
            n=0
            while [ $n -lt 20 ]; do
              read c < $p/pids.current; read m < $p/pids.max; read e < $p/pids.events
              echo "abuse: pids $c of $m; pids.events: $e"
              [ "$e" = "max 0" ] || n=$((n+1))
              i=0; while [ $i -lt 300 ]; do i=$((i+1)); done
            done
            """),
        new("memory-hog", "`dd bs=1G` (a 1 GiB buffer, over the 512 MiB default)", TimedOut: false, """
            echo "abuse: allocating 1 GiB"
            dd if=/dev/zero of=/dev/null bs=1G count=1
            """),
        new("tmpfs-fill", "`dd` until `/tmp`, `/work` and `/dev/shm` are full", TimedOut: false, """
            for d in /tmp /work /dev/shm; do
              e=$(dd if=/dev/zero of=$d/fill bs=1M 2>&1 | grep -m 1 error)
              echo "abuse: $d: $(stat -c %s $d/fill) bytes; $e"
              rm -f $d/fill
            done
            """),
        new("write-root", "writes to `/`, `/etc/passwd`, `/etc`, `/bin/sh`, its own inputs, `/proc/sys`, `/sys`", TimedOut: false, Attempt + """
            attempt root-file touch /abuse
            attempt etc-passwd sh -c 'echo abuse::0:0::/:/bin/sh >> /etc/passwd'
            attempt etc-dir mkdir /etc/abuse
            attempt replace-bin-sh sh -c 'echo exit > /bin/sh'
            attempt input-file sh -c 'echo {} > /pipelines/input/event.json'
            attempt input-dir touch /pipelines/input/abuse
            attempt proc-sys sh -c 'echo 1 > /proc/sys/vm/drop_caches'
            attempt sys touch /sys/abuse
            """),
        new("network", "`nc` to the broker's and the database's ports (AMQP, management, PostgreSQL) and a listener on every address, on loopback and on each of the host's addresses", TimedOut: false, NetworkProbe),
        new("mount", "`mount` of tmpfs, proc, sysfs, a bind mount, a read-write remount of `/`", TimedOut: false, Attempt + """
            attempt tmpfs mount -t tmpfs none /tmp
            attempt proc mount -t proc proc /tmp
            attempt sysfs mount -t sysfs sys /tmp
            attempt bind mount -o bind /tmp /work
            attempt remount-root-rw mount -o remount,rw /
            """),
        new("unshare", "`unshare` of user, mount, network, PID, IPC and UTS namespaces", TimedOut: false, Attempt + """
            attempt user-ns unshare -r true
            attempt mount-ns unshare -m true
            attempt net-ns unshare -n true
            attempt pid-ns unshare -p -f true
            attempt ipc-ns unshare -i true
            attempt uts-ns unshare -u true
            """),
        new("timeout-overrun", "ignores SIGTERM and spins a CPU past its timeout", TimedOut: true, """
            trap '' TERM INT HUP
            echo "abuse: spinning past the timeout"
            while :; do :; done
            """),
        new("stdout-flood", "100 MB of stdout (`yes | head -c 104857600`, 100-byte lines) as fast as it can", TimedOut: false, """
            yes 'abuse: flood .............................................................................. 100 bytes' | head -c 104857600
            """),
    ];

    public string Id => "abuse";

    public string Title => "in-container abuse under the default sandbox";

    public bool NeedsDocker => true;

    public RowKind Kind => RowKind.HostileInput;

    public string Bar => "each blocked, killed or truncated; kill within timeout + 2 s; the API stays responsive meanwhile";

    public async Task<RowResult> RunAsync(Cluster cluster, FaultOptions options, CancellationToken cancellationToken)
    {
        var rounds = options.Pick(3, 1);
        // Long enough that the other abuses load the machine when it runs out; the flood takes longer anyway.
        var timeout = options.Pick(TimeSpan.FromSeconds(20), TimeSpan.FromSeconds(10));
        using var docker = new DockerHost();
        // Someone's service listening on every address of the host: the probe's control.
        using var listener = new TcpListener(IPAddress.Any, 0);
        listener.Start();
        var accepted = 0;
        _ = Task.Run(async () =>
        {
            while (true)
            {
                using var client = await listener.AcceptTcpClientAsync(cancellationToken);
                Interlocked.Increment(ref accepted);
            }
        }, cancellationToken).ContinueWith(_ => { }, TaskScheduler.Default);
        var listenerPort = ((IPEndPoint)listener.LocalEndpoint).Port;
        var hostAddresses = HostAddresses();
        var targets = string.Join(' ', new[] { IPAddress.Loopback.ToString() }.Concat(hostAddresses)
            .SelectMany(host => new[] { cluster.Postgres.Port, cluster.Rabbit.Port, cluster.Rabbit.ManagementPort, listenerPort }.Select(port => $"{host}:{port}")));

        await using var deployment = await Deployment.CreateAsync(cluster, "abuse", Definitions(timeout, targets));
        foreach (var (key, value) in new Dictionary<string, string>
        {
            ["Pipelines__Containers__Enabled"] = "true",
            // Every abuse at once on the one worker; the sandbox itself keeps its defaults.
            ["Pipelines__Containers__MaxConcurrentContainers"] = "12",
            ["Pipelines__Worker__ConcurrencyPerQueue"] = "12",
        })
        {
            deployment.WorkerEnvironment[key] = value;
        }
        await deployment.StartCoordinatorAsync();
        var worker = deployment.StartWorker($"faults-abuse-{Guid.NewGuid():N}"[..21]);
        using var api = await ApiEndpoint.StartAsync(deployment);
        await deployment.WaitForConsumersAsync(StepQueues.Containers, 1);

        // A plain step first: a long-running worker is warm, and its first step spends seconds in the JIT.
        var warmUp = new CallLog();
        await warmUp.RecordAsync(key => Load.Launcher(deployment.Launcher, "abuse-after", () => null)(key, cancellationToken));
        await Reconciliation.DrainAsync(deployment.Store, () => Reconciliation.AcceptedAsync(deployment.Store, warmUp), TimeSpan.FromMinutes(1));

        await using var events = docker.Record("pipelines.pipeline", "create", "start", "die", "destroy");
        var calls = new CallLog();
        var started = new List<(Abuse Abuse, int Round, Call Call)>();
        var engineLogPeak = 0L;
        TimeSpan drained;
        using (var polling = new CancellationTokenSource())
        {
            var poller = new ApiPoller(api);
            var polls = poller.RunAsync(polling.Token);
            drained = TimeSpan.Zero;
            for (var round = 1; round <= rounds; round++)
            {
                // The step to be killed first, alone, so that its timeout is not spent in the engine's queue
                // of nine containers to start at once; the others start once it runs, and load the machine
                // while its timeout runs out.
                foreach (var abuse in Abuses.OrderBy(a => !a.TimedOut))
                {
                    var call = await calls.RecordAsync(key => api.Starter($"abuse-{abuse.Name}", () => null)(key, cancellationToken), ApiEndpoint.Refused);
                    started.Add((abuse, round, call));
                    if (abuse.TimedOut && call.RunId is { } timed)
                    {
                        await Shell.WaitUntilAsync(async () => (await docker.ListAsync(("pipelines.run", timed.ToString()))).Any(c => c.State == "running"),
                            TimeSpan.FromMinutes(1), $"the container of {abuse.Name} running", TimeSpan.FromMilliseconds(100));
                    }
                }
                using var sampling = new CancellationTokenSource();
                var flood = started.Last(s => s.Abuse.Name == "stdout-flood").Call.RunId;
                var sampler = flood is { } id ? EngineLogPeakAsync(docker, id, sampling.Token) : Task.FromResult(0L);
                drained += await Reconciliation.DrainAsync(deployment.Store, () => Reconciliation.AcceptedAsync(deployment.Store, calls), TimeSpan.FromMinutes(5));
                await sampling.CancelAsync();
                engineLogPeak = Math.Max(engineLogPeak, await sampler);
            }
            await polling.CancelAsync();
            await polls;
            return await ReportAsync(deployment, docker, worker, poller, started, calls, events, timeout, rounds, targets, () => accepted, engineLogPeak, drained, cancellationToken);
        }
    }

    private async Task<RowResult> ReportAsync(
        Deployment deployment, DockerHost docker, EngineProcess worker, ApiPoller poller, List<(Abuse Abuse, int Round, Call Call)> started, CallLog calls,
        DockerHost.EventRecording recording, TimeSpan timeout, int rounds, string targets, Func<int> accepted,
        long engineLogPeak, TimeSpan drained, CancellationToken cancellationToken)
    {
        var notes = new List<string>();
        var runIds = started.Where(s => s.Call.RunId is not null).Select(s => s.Call.RunId!.Value).ToList();
        var attempts = await deployment.Store.ReadAsync(c => c.Attempts.Where(a => runIds.Contains(a.RunId)).ToListAsync(cancellationToken));
        var logs = await deployment.Store.ReadAsync(c => c.Logs.Where(l => runIds.Contains(l.RunId)).ToListAsync(cancellationToken));
        var runs = await deployment.Store.ReadAsync(c => c.Runs.Where(r => runIds.Contains(r.Id)).ToListAsync(cancellationToken));
        var events = recording.Items;
        var acceptedBySandbox = accepted();

        // The same probe outside the sandbox, on the host's network: it does reach what listens there.
        var control = await docker.RunToEndAsync($"faults-abuse-control-{Guid.NewGuid():N}"[..32],
            ["sh", "-c", $"TARGETS='{targets}'\n{NetworkProbe}"], "host", cancellationToken);
        var controlReached = AbuseLines(control.Output).Where(l => l.EndsWith(": ALLOWED", StringComparison.Ordinal)).Select(l => l.Split(' ')[1].TrimEnd(':')).ToList();

        var outcomes = new List<Outcome>();
        foreach (var (abuse, round, call) in started)
        {
            if (call.RunId is not { } runId)
            {
                outcomes.Add(new Outcome(abuse, round, false, "**not started**", $"the API answered {call.Error}", null));
                continue;
            }
            var attempt = attempts.Where(a => a.RunId == runId).OrderBy(a => a.Number).LastOrDefault();
            var run = runs.Single(r => r.Id == runId);
            var lines = logs.Where(l => l.RunId == runId).OrderBy(l => l.Id).ToList();
            var stepLines = AbuseLines(string.Join('\n', lines.Where(l => l.Stream == "stdout").Select(l => l.Text)));
            var mine = events.Where(e => e.Actor.Attributes.TryGetValue("pipelines.run", out var r) && r == runId.ToString()).ToList();
            DateTimeOffset? At(string action) => mine.FirstOrDefault(e => e.Action == action) is { } e ? DateTimeOffset.FromUnixTimeMilliseconds(e.TimeNano / 1_000_000) : null;
            var (start, gone) = (At("start"), At("destroy"));
            var kind = attempt is null ? "—" : attempt.ErrorKind ?? "none";
            var exitCode = attempt?.Details is { } details ? JsonNode.Parse(details)?["exit_code"]?.GetValue<string>() : null;
            var lived = start is { } s0 && gone is { } g0 ? g0 - s0 : (TimeSpan?)null;
            // The timeout counts from the attempt's start (the worker's claim): the container must be
            // gone within the timeout + 2 s of it, however long the engine took to start it.
            var deadline = attempt is null ? (DateTimeOffset?)null : attempt.StartedAt + timeout;
            var afterTimeout = gone - deadline;
            var killedInTime = kind == "timeout" && afterTimeout is { } late && late <= KillMargin;
            string Since(string action) => attempt is not null && At(action) is { } t ? RowResult.Seconds(t - attempt.StartedAt) : "—";
            var askedToStart = lines.FirstOrDefault(l => l.Stream == "system" && l.Text.StartsWith("running ", StringComparison.Ordinal))?.Timestamp - attempt?.StartedAt;
            var timing = $"timeout {Seconds(timeout)}; the container was killed {RowResult.Seconds(At("die") - deadline)} and removed {RowResult.Seconds(afterTimeout)} after it (after the attempt began: created {Since("create")}, the worker asked to start it {RowResult.Seconds(askedToStart)}, started {Since("start")}, killed {Since("die")}, removed {Since("destroy")})";

            outcomes.Add(abuse.Name switch
            {
                "fork-bomb" => ForkBomb(abuse, round, run.State, stepLines, RowResult.Seconds(lived)),
                "memory-hog" => new Outcome(abuse, round, kind == "oom" && exitCode == "137", kind == "oom" ? "killed" : "**not killed**",
                    $"exit code {exitCode ?? "—"}, kind {kind}{(attempt?.ErrorMessage?.Contains("ran out of memory", StringComparison.Ordinal) == true ? " (the engine reported the OOM kill)" : " (exit 137 without the engine's OOM flag)")}; container lived {RowResult.Seconds(lived)}", null),
                "tmpfs-fill" => TmpfsFill(abuse, round, run.State, stepLines),
                "network" => Refusals(abuse, round, run.State, stepLines, extra: stepLines.FirstOrDefault(l => l.StartsWith("interfaces:", StringComparison.Ordinal))),
                "write-root" or "mount" or "unshare" => Refusals(abuse, round, run.State, stepLines, extra: null),
                "timeout-overrun" => new Outcome(abuse, round, killedInTime, killedInTime ? "killed" : "**not killed in time**", $"kind {kind}; {timing}", afterTimeout),
                "stdout-flood" => Flood(abuse, round, run, attempt, lines, engineLogPeak),
                _ => throw new InvalidOperationException(abuse.Name),
            });
        }

        // The worker carries on: alive, and it runs a plain step afterwards.
        var after = await calls.RecordAsync(key => Load.Launcher(deployment.Launcher, "abuse-after", () => null)(key, cancellationToken));
        await Reconciliation.DrainAsync(deployment.Store, () => Reconciliation.AcceptedAsync(deployment.Store, calls), TimeSpan.FromMinutes(1));
        var afterState = after.RunId is { } afterId ? (await deployment.Store.ReadAsync(c => c.Runs.SingleAsync(r => r.Id == afterId, cancellationToken))).State : (RunState?)null;
        var peakRss = PeakRss(worker.ProcessId);
        var workerAlive = !worker.HasExited;
        var left = (await docker.ListAsync(("pipelines.managed", "true"))).Count(c => c.Labels.TryGetValue("pipelines.worker", out var w) && w == worker.Id);
        var result = await Reconciliation.ComputeAsync(deployment.Store, calls, deployment.ReadLedger(), ledgered: false);

        var network = outcomes.Where(o => o.Abuse.Name == "network").ToList();
        var controlOk = controlReached.Contains($"{IPAddress.Loopback}:{deployment.Cluster.Postgres.Port}") && controlReached.Contains($"{IPAddress.Loopback}:{deployment.Cluster.Rabbit.Port}");
        notes.Add($"control: the same `nc` probe in a container on the host's network (outside the sandbox) reached {controlReached.Count} of {targets.Split(' ').Length} targets ({string.Join(", ", controlReached)}); the listener on every address accepted {acceptedBySandbox} connection(s) during the sandboxed steps and {accepted() - acceptedBySandbox} from the control.");
        foreach (var group in outcomes.GroupBy(o => o.Abuse))
        {
            var worst = group.FirstOrDefault(o => !o.Met) ?? group.Last();
            var rounds2 = rounds > 1 ? $" (round {worst.Round} of {rounds}{(group.Any(o => o.AfterTimeout is not null) ? $"; gone after the timeout max {RowResult.Seconds(group.Max(o => o.AfterTimeout))} over {group.Count()} rounds" : "")})" : "";
            notes.Add($"{group.Key.Name} ({group.Key.What}): **{worst.Verdict}** — {worst.Evidence}{rounds2}");
        }
        notes.Add(poller.Describe());
        notes.Add($"worker: {(workerAlive ? "alive" : "**exited**")} after the row, peak RSS {peakRss}; a plain step started afterwards on it: {afterState?.ToString() ?? "not started"}; {left} of its containers left on the engine.");

        var met = outcomes.Count(o => o.Met);
        var killed = outcomes.Where(o => o.AfterTimeout is not null).ToList();
        return RowResult.Of(this) with
        {
            Passed = met == outcomes.Count && controlOk && acceptedBySandbox == 0 && network.Count > 0 && poller.Responsive && workerAlive && afterState == RunState.Succeeded && left == 0 && result.Lost == 0,
            Cases = $"{Abuses.Length} abuses{(rounds > 1 ? $" × {rounds} rounds" : "")}, each a container step in the default sandbox, all at once on one worker",
            Outcome = string.Create(CultureInfo.InvariantCulture,
                $"{met} of {outcomes.Count} contained: {Tally(outcomes)}; timed-out containers gone max {RowResult.Seconds(killed.Max(o => o.AfterTimeout))} after the timeout; API polls {poller.Summary}; worker alive, next step {afterState?.ToString().ToLowerInvariant() ?? "—"}"),
            Schedule = string.Create(CultureInfo.InvariantCulture,
                $"A worker with containers (sandbox settings at their defaults: user 65534, no capabilities, read-only root, network none, memory 512m, pids 256, tmpfs 64m, log cap 1 MiB; `MaxConcurrentContainers` 12 so all run at once), an API process, the coordinator in the harness; one plain step first, to warm the worker up. Each round starts `timeout-overrun` through `POST /api/v1/runs`, and once its container runs the other {Abuses.Length - 1} at once, and drains; `timeout-overrun` has `timeout: {Seconds(timeout)}`, the others 2m, which they never reach. Meanwhile the API is polled every 100 ms (`/readyz`, `GET /api/v1/runs?limit=20`, 5 s client timeout). Evidence from the stored attempts and logs, Docker's event log (container create, start, die, destroy), the engine's log file of the flood, and a control run of the network probe outside the sandbox; drained in {RowResult.Seconds(drained)}."),
            Notes = notes,
        };
    }

    private static Outcome ForkBomb(Abuse abuse, int round, RunState state, IReadOnlyList<string> lines, string lived)
    {
        var samples = lines.Select(l => PidsLine().Match(l)).Where(m => m.Success).ToList();
        var peak = samples.Count == 0 ? -1 : samples.Max(m => int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture));
        var limit = samples.Count == 0 ? "?" : samples[0].Groups[2].Value;
        var refused = samples.Count == 0 ? 0 : samples.Max(m => long.Parse(m.Groups[3].Value, CultureInfo.InvariantCulture));
        var blocked = state == RunState.Succeeded && refused > 0 && limit != "max" && peak <= int.Parse(limit, CultureInfo.InvariantCulture);
        return new Outcome(abuse, round, blocked, blocked ? "blocked" : "**not blocked**",
            $"pids peaked at {peak} of {limit} over {samples.Count} samples, {refused:N0} forks refused (pids.events); run {state.ToString().ToLowerInvariant()}; container lived {lived}", null);
    }

    private static Outcome TmpfsFill(Abuse abuse, int round, RunState state, IReadOnlyList<string> lines)
    {
        var folders = lines.Select(l => FillLine().Match(l)).Where(m => m.Success)
            .Select(m => (Folder: m.Groups[1].Value, Bytes: long.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture), Error: m.Groups[3].Value)).ToList();
        var blocked = state == RunState.Succeeded && folders.Count == 3 && folders.All(f => f.Bytes <= 64L << 20 && f.Error.Contains("No space left on device", StringComparison.Ordinal));
        return new Outcome(abuse, round, blocked, blocked ? "blocked" : "**not blocked**",
            string.Join(", ", folders.Select(f => $"{f.Folder} full at {f.Bytes / (1 << 20)} MiB")) + $" (\"{folders.FirstOrDefault().Error}\"); run {state.ToString().ToLowerInvariant()}", null);
    }

    private static Outcome Refusals(Abuse abuse, int round, RunState state, IReadOnlyList<string> lines, string? extra)
    {
        var checks = lines.Where(l => l.EndsWith(": ALLOWED", StringComparison.Ordinal) || l.Contains(": refused: ", StringComparison.Ordinal)).ToList();
        var allowed = checks.Where(l => l.EndsWith(": ALLOWED", StringComparison.Ordinal)).ToList();
        var reasons = checks.Except(allowed).Select(l => l[(l.IndexOf(": refused: ", StringComparison.Ordinal) + 11)..]).Select(Reason).Distinct().ToList();
        var blocked = state == RunState.Succeeded && checks.Count > 0 && allowed.Count == 0;
        return new Outcome(abuse, round, blocked, blocked ? "blocked" : "**not blocked**",
            $"{checks.Count - allowed.Count} of {checks.Count} refused ({string.Join("; ", reasons)})" +
            (allowed.Count > 0 ? $"; **allowed: {string.Join(", ", allowed)}**" : "") + (extra is null ? "" : $"; {extra.Trim()}"), null);
    }

    private static Outcome Flood(Abuse abuse, int round, RunRecord run, StepAttemptRecord? attempt, List<StepLogRecord> lines, long engineLogPeak)
    {
        var output = lines.Where(l => l.Stream != "system").ToList();
        var bytes = output.Sum(l => (long)Encoding.UTF8.GetByteCount(l.Text) + 1);
        var marker = lines.FirstOrDefault(l => l.Stream == "system" && l.Text.Contains("log truncated", StringComparison.Ordinal))?.Text;
        var took = attempt?.FinishedAt - attempt?.StartedAt;
        var truncated = run.State == RunState.Succeeded && marker is not null && bytes <= 1 << 20 && engineLogPeak <= (1 << 20) + 4096;
        return new Outcome(abuse, round, truncated, truncated ? "truncated" : "**not truncated**", string.Create(CultureInfo.InvariantCulture,
            $"stored log {bytes:N0} bytes in {output.Count:N0} lines, then {(marker is null ? "**no truncation line**" : $"\"{marker}\"")}; the engine's log file peaked at {engineLogPeak:N0} bytes; the step took {RowResult.Seconds(took)}, run {run.State.ToString().ToLowerInvariant()}"), null);
    }

    private static string Reason(string message)
    {
        foreach (var known in new[] { "Read-only file system", "Permission denied", "Operation not permitted", "permission denied", "Connection refused", "Network is unreachable", "No such file or directory" })
        {
            if (message.Contains(known, StringComparison.Ordinal))
            {
                return known;
            }
        }
        return message;
    }

    /// <summary>The lines a step printed with the <c>abuse: </c> prefix, without it.</summary>
    private static List<string> AbuseLines(string output) =>
        [.. output.Split('\n').Where(l => l.StartsWith("abuse: ", StringComparison.Ordinal)).Select(l => l[7..].TrimEnd('\r'))];

    private static string Tally(List<Outcome> outcomes) =>
        string.Join(", ", outcomes.GroupBy(o => o.Verdict).Select(g => $"{g.Count()} {g.Key}"));

    private static string Seconds(TimeSpan value) => string.Create(CultureInfo.InvariantCulture, $"{value.TotalSeconds:0}s");

    private static string Definitions(TimeSpan timeout, string targets)
    {
        var encoder = new JsonSerializerOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
        var yaml = new StringBuilder("pipelines:\n");
        foreach (var abuse in Abuses)
        {
            // `$$` is a literal `$` in a definition: the shell's variables are not the file's.
            var command = JsonSerializer.Serialize(abuse.Script, encoder).Replace("$", "$$", StringComparison.Ordinal);
            yaml.Append(CultureInfo.InvariantCulture, $"""
                  abuse-{abuse.Name}:
                    steps:
                      - name: abuse
                        image: "{DockerHost.TestImage}"
                        timeout: {(abuse.TimedOut ? Seconds(timeout) : Seconds(Generous))}
                        env: {"{"} TARGETS: "{targets}" {"}"}
                        command: ["sh", "-c", {command}]

                """);
        }
        yaml.Append(CultureInfo.InvariantCulture, $"""
              abuse-after:
                steps:
                  - {"{"} name: after, image: "{DockerHost.TestImage}", command: ["echo", "ok"] {"}"}

            """);
        return yaml.ToString();
    }

    /// <summary>The host's own IPv4 addresses other than loopback: where a container on a bridge would look for the broker.</summary>
    private static List<string> HostAddresses() =>
        [.. NetworkInterface.GetAllNetworkInterfaces()
            .Where(i => i.OperationalStatus == OperationalStatus.Up && i.NetworkInterfaceType != NetworkInterfaceType.Loopback)
            .SelectMany(i => i.GetIPProperties().UnicastAddresses)
            .Where(a => a.Address.AddressFamily == AddressFamily.InterNetwork)
            .Select(a => a.Address.ToString())
            .Distinct()];

    /// <summary>The largest size the engine's log file of the flood's container reached (the harness runs as root, beside the engine).</summary>
    private static async Task<long> EngineLogPeakAsync(DockerHost docker, Guid runId, CancellationToken cancellationToken)
    {
        var peak = 0L;
        try
        {
            while (!cancellationToken.IsCancellationRequested)
            {
                foreach (var container in await docker.ListAsync(("pipelines.run", runId.ToString())))
                {
                    try
                    {
                        var path = (await docker.Client.Containers.InspectContainerAsync(container.ID, cancellationToken)).LogPath;
                        // One stat: the container may be removed between an existence check and a size read.
                        var log = string.IsNullOrEmpty(path) ? null : new FileInfo(path);
                        if (log is { Exists: true })
                        {
                            peak = Math.Max(peak, log.Length);
                        }
                    }
                    catch (Docker.DotNet.DockerContainerNotFoundException)
                    {
                    }
                }
                await Task.Delay(TimeSpan.FromMilliseconds(100), cancellationToken);
            }
        }
        catch (OperationCanceledException)
        {
        }
        return peak;
    }

    private static string PeakRss(int processId)
    {
        try
        {
            var line = File.ReadLines($"/proc/{processId}/status").FirstOrDefault(l => l.StartsWith("VmHWM:", StringComparison.Ordinal));
            return line is null ? "unknown" : string.Create(CultureInfo.InvariantCulture, $"{long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) / 1024} MB");
        }
        catch (IOException)
        {
            return "unknown";
        }
    }

    [GeneratedRegex(@"^pids (\d+) of (\w+); pids\.events: max (\d+)")]
    private static partial Regex PidsLine();

    [GeneratedRegex(@"^(/\S+): (\d+) bytes; (.*)$")]
    private static partial Regex FillLine();

    private sealed record Abuse(string Name, string What, bool TimedOut, string Script);

    private sealed record Outcome(Abuse Abuse, int Round, bool Met, string Verdict, string Evidence, TimeSpan? AfterTimeout);

    /// <summary>Polls the API while the abuses run: every 100 ms, <c>/readyz</c> and the run list in turn.</summary>
    private sealed class ApiPoller(ApiEndpoint api)
    {
        private static readonly TimeSpan ClientTimeout = TimeSpan.FromSeconds(5);
        // Responsive: every poll answered, and most of them at once; a loaded 2-core machine shared with
        // other builds makes single slow answers (the p99 and the max, reported) too noisy for a bar.
        private static readonly TimeSpan MedianBar = TimeSpan.FromMilliseconds(250);
        private readonly List<(string Path, TimeSpan Latency, string? Failure)> _polls = [];

        public async Task RunAsync(CancellationToken cancellationToken)
        {
            using var anonymous = api.Client(null, ClientTimeout);
            using var reader = api.Client("reader", ClientTimeout);
            var turn = 0;
            while (!cancellationToken.IsCancellationRequested)
            {
                var (client, path) = turn++ % 2 == 0 ? (anonymous, "/readyz") : (reader, "/api/v1/runs?limit=20");
                var clock = Stopwatch.StartNew();
                string? failure;
                try
                {
                    using var response = await client.GetAsync(path, CancellationToken.None);
                    await response.Content.ReadAsByteArrayAsync(CancellationToken.None);
                    failure = response.IsSuccessStatusCode ? null : $"HTTP {(int)response.StatusCode}";
                }
                catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
                {
                    failure = e is TaskCanceledException ? $"no answer within {ClientTimeout.TotalSeconds:0} s" : e.Message;
                }
                _polls.Add((path, clock.Elapsed, failure));
                try
                {
                    await Task.Delay(TimeSpan.FromMilliseconds(100), cancellationToken);
                }
                catch (OperationCanceledException)
                {
                }
            }
        }

        private TimeSpan Percentile(double q) => Percentile(_polls.Select(p => p.Latency), q);

        /// <summary>By the nearest-rank method, as the other rows' latencies.</summary>
        private static TimeSpan Percentile(IEnumerable<TimeSpan> latencies, double q)
        {
            var sorted = latencies.Order().ToList();
            return sorted.Count == 0 ? TimeSpan.Zero : sorted[Math.Clamp((int)Math.Ceiling(q * sorted.Count) - 1, 0, sorted.Count - 1)];
        }

        public bool Responsive => _polls.Count > 0 && _polls.All(p => p.Failure is null) && Percentile(0.5) <= MedianBar;

        public string Summary => string.Create(CultureInfo.InvariantCulture,
            $"{_polls.Count(p => p.Failure is null)}/{_polls.Count} answered, p50 {RowResult.Seconds(Percentile(0.5))}, p99 {RowResult.Seconds(Percentile(0.99))}, max {RowResult.Seconds(Percentile(1))}");

        public string Describe()
        {
            var byPath = _polls.GroupBy(p => p.Path).Select(g =>
            {
                TimeSpan At(double q) => Percentile(g.Select(p => p.Latency), q);
                return $"`{g.Key}` {g.Count()} polls, p50 {RowResult.Seconds(At(0.5))}, p99 {RowResult.Seconds(At(0.99))}, max {RowResult.Seconds(At(1))}, {g.Count(p => p.Failure is not null)} failed";
            });
            var failures = _polls.Where(p => p.Failure is not null).GroupBy(p => p.Failure).Select(g => $"{g.Key} ×{g.Count()}").ToList();
            return $"API while the abuses ran (bar: every poll answered 2xx within {ClientTimeout.TotalSeconds:0} s, median ≤ {MedianBar.TotalMilliseconds:0} ms): {string.Join("; ", byPath)}{(failures.Count > 0 ? $"; **failures: {string.Join(", ", failures)}**" : "")}.";
        }
    }
}
