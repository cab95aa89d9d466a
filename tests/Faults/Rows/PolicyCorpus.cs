using System.Globalization;
using System.Text;
using Microsoft.EntityFrameworkCore;
using Pipelines.Core.Definitions;
using Pipelines.Core.Planning;
using Pipelines.Faults.Engine;
using Pipelines.Faults.Recording;
using Pipelines.Faults.Report;
using Pipelines.Faults.Services;

namespace Pipelines.Faults.Rows;

/// <summary>
/// Hostile input: container steps that ask for more than the sandbox allows. Powers the definition format
/// has no key for (privileged, capabilities, devices, host PID/IPC, seccomp) must be refused when the file
/// loads; what it can express but the policy forbids (host network, the engine's socket, host root and
/// system folders, reserved labels and targets, limits above the worker's) must fail the step as
/// <c>policy</c> on the worker, before any pull or container creation — checked in the engine's events, recorded as they happen.
/// </summary>
internal sealed class PolicyCorpus : IRow
{
    private const string NeverPulled = "127.0.0.1:1/faults/never-pulled:1";

    public string Id => "policy";

    public string Title => "container policy corpus";

    public bool NeedsDocker => true;

    public RowKind Kind => RowKind.HostileInput;

    public string Bar => "all refused before any container is created";

    public async Task<RowResult> RunAsync(Cluster cluster, FaultOptions options, CancellationToken cancellationToken)
    {
        using var docker = new DockerHost();
        var notes = new List<string>();

        // 1. No key in the format: the file is refused where the key is.
        (string Key, string Value)[] unsupported =
        [
            ("privileged", "true"), ("cap_add", "[SYS_ADMIN]"), ("devices", "[\"/dev/sda:/dev/sda\"]"), ("pid", "host"), ("ipc", "host"),
            ("security_opt", "[\"seccomp=unconfined\"]"), ("userns_mode", "host"), ("user", "root"), ("sysctls", "{ net.ipv4.ip_forward: 1 }"),
            ("cgroup_parent", "/"), ("runtime", "runc"), ("uts", "host"),
        ];
        var folder = Path.Combine(cluster.Folder, "rows", "policy-files");
        Directory.CreateDirectory(folder);
        var loader = new PipelineLoader(new PipelineLoaderOptions { Variables = new Dictionary<string, string>() });
        var refusedAtLoad = 0;
        foreach (var (key, value) in unsupported)
        {
            var path = Path.Combine(folder, $"{key}.yaml");
            await File.WriteAllTextAsync(path, $"pipelines:\n  escape:\n    steps:\n      - name: s\n        image: {NeverPulled}\n        {key}: {value}\n", cancellationToken);
            var result = loader.LoadFile(path);
            if (!result.Succeeded && result.Errors.Any(e => e.Position == new SourcePosition(6, 9) && e.Message.Contains($"unknown key '{key}'", StringComparison.Ordinal)))
            {
                refusedAtLoad++;
            }
            else
            {
                notes.Add($"`{key}: {value}` was not refused at 6:9 as an unknown key: {(result.Succeeded ? "it loaded" : string.Join(" | ", result.Diagnostics))}");
            }
        }

        // 2. Expressible but forbidden: each is a pipeline the worker must refuse as 'policy'.
        var allowed = Path.Combine(cluster.Folder, "rows", "policy-allowed");
        Directory.CreateDirectory(allowed);
        var link = Path.Combine(allowed, "innocent-looking");
        File.CreateSymbolicLink(link, "/var/run/docker.sock");
        var forbidden = new (string Name, string Yaml)[]
        {
            ("host-network", "network: host"),
            ("container-network", "network: \"container:someone-else\""),
            ("host-root", "volumes: [\"/:/host\"]"),
            ("docker-socket", "volumes: [\"/var/run/docker.sock:/var/run/docker.sock\"]"),
            ("run-folder", "volumes: [\"/run:/hostrun:ro\"]"),
            ("proc", "volumes: [\"/proc:/hostproc:ro\"]"),
            ("sys", "volumes: [\"/sys:/hostsys\"]"),
            ("dev", "volumes: [\"/dev:/dev\"]"),
            ("docker-data", "volumes: [\"/var/lib/docker:/data\"]"),
            ("etc-not-allowed", "volumes: [\"/etc:/hostetc:ro\"]"),
            ("symlink-to-socket", $"volumes: [\"{link}:/sock\"]"),
            ("sidecar-socket", $"sidecars: [{{ name: helper, image: \"{NeverPulled}\", volumes: [\"/var/run/docker.sock:/sock\"] }}]"),
            ("reserved-label", "labels: { pipelines.worker: someone-else }"),
            ("exchange-mount", "volumes: [\"scratch:/pipelines/input\"]"),
            ("memory-above-max", "resources: { memory: 1g }"),
            ("build-context-root", null!),
        };
        var yaml = new StringBuilder("pipelines:\n");
        foreach (var (name, line) in forbidden)
        {
            yaml.Append(CultureInfo.InvariantCulture, $"  policy-{name}:\n    steps:\n      - name: s\n");
            yaml.Append(line is null ? "        build: { context: / }\n" : $"        image: \"{NeverPulled}\"\n        {line}\n");
        }
        // A control: allowed by this worker's policy, so it must get past the policy and fail on the pull instead.
        yaml.Append(CultureInfo.InvariantCulture, $"  policy-control:\n    steps:\n      - name: s\n        image: \"{NeverPulled}\"\n        volumes: [\"{allowed}:/data:ro\"]\n");
        // And one that runs, to show that the event log does show a creation.
        yaml.Append(CultureInfo.InvariantCulture, $"  policy-probe:\n    steps:\n      - name: s\n        image: \"{DockerHost.TestImage}\"\n        command: [\"true\"]\n");

        await using var deployment = await Deployment.CreateAsync(cluster, "policy", yaml.ToString());
        deployment.WorkerEnvironment["Pipelines__Containers__Enabled"] = "true";
        deployment.WorkerEnvironment["Pipelines__Containers__AllowedHostPaths__0"] = allowed;
        deployment.WorkerEnvironment["Pipelines__Containers__MaxMemory"] = "256m";
        await deployment.StartCoordinatorAsync();
        deployment.StartWorker($"faults-policy-{Guid.NewGuid():N}"[..22]);
        await deployment.WaitForConsumersAsync(StepQueues.Containers, 1);
        // Recorded as they happen: the engine answers a later query from its last 256 events only.
        var creations = docker.Record("pipelines.pipeline", "create");
        var calls = new CallLog();
        foreach (var name in forbidden.Select(f => f.Name).Append("control").Append("probe"))
        {
            await calls.RecordAsync(key => Load.Launcher(deployment.Launcher, $"policy-{name}", () => null)(key, cancellationToken));
        }
        var drained = await Reconciliation.DrainAsync(deployment.Store, () => Reconciliation.AcceptedAsync(deployment.Store, calls), TimeSpan.FromMinutes(2));
        await creations.DisposeAsync();
        int CreatedFor(string pipeline) =>
            creations.Items.Count(m => m.Actor?.Attributes is { } labels && labels.TryGetValue("pipelines.pipeline", out var value) && value == pipeline);
        var attempts = await deployment.Store.ReadAsync(c => c.Attempts.Join(c.Runs, a => a.RunId, r => r.Id, (a, r) => new { r.Pipeline, a.Number, a.ErrorKind, a.ErrorMessage }).ToListAsync(cancellationToken));
        var refusedByPolicy = 0;
        foreach (var (name, _) in forbidden)
        {
            var mine = attempts.Where(a => a.Pipeline == $"policy-{name}").ToList();
            if (mine is [{ ErrorKind: "policy", ErrorMessage: { } message }] && message.Contains("refused by this worker's sandbox policy; nothing was started", StringComparison.Ordinal))
            {
                refusedByPolicy++;
            }
            else
            {
                notes.Add($"policy-{name}: expected one attempt refused by the sandbox policy, got {string.Join("; ", mine.Select(a => $"attempt {a.Number} {a.ErrorKind}: {a.ErrorMessage}"))}");
            }
        }
        var control = attempts.Where(a => a.Pipeline == "policy-control").Select(a => a.ErrorMessage ?? "").ToList();
        var controlRefused = control.Any(m => m.Contains("sandbox policy", StringComparison.Ordinal));
        var created = forbidden.Sum(f => CreatedFor($"policy-{f.Name}"));
        var probe = CreatedFor("policy-probe");
        notes.Add($"probe: a step allowed to run created {probe} container(s) while the events were recorded (the recording does see creations).");
        var example = attempts.FirstOrDefault(a => a.Pipeline == "policy-symlink-to-socket")?.ErrorMessage;
        notes.Add($"the control step, allowed by the policy, {(controlRefused ? "**was refused by it too**" : "got past it")} and failed {control.Count} time(s) on the pull of an image that exists nowhere: \"{control.FirstOrDefault()?.ReplaceLineEndings(" ")}\"");
        if (example is not null)
        {
            notes.Add($"e.g. the symbolic link to the socket inside an allowed folder: \"{example.ReplaceLineEndings(" ")}\"");
        }
        var total = unsupported.Length + forbidden.Length;
        return RowResult.Of(this) with
        {
            Passed = refusedAtLoad == unsupported.Length && refusedByPolicy == forbidden.Length && created == 0 && probe > 0 && !controlRefused && control.Count > 0,
            Cases = $"{total}: {unsupported.Length} powers with no key in the format, {forbidden.Length} forbidden by the worker's policy (+1 allowed control)",
            Outcome = $"{refusedAtLoad} refused when the file loads (unknown key, at its line:column); {refusedByPolicy} refused by the worker's sandbox policy in 1 attempt, not retried; {created} container creations in the engine's events",
            Schedule = string.Create(CultureInfo.InvariantCulture,
                $"The first group loaded with `PipelineLoader`; the second run as pipelines on a worker with containers (`AllowedHostPaths` = one temporary folder holding a symbolic link to the engine's socket, `MaxMemory` 256m), images that cannot be pulled, Docker's event log read for container creations labelled with their pipelines; drained in {RowResult.Seconds(drained)}."),
            Notes = notes,
        };
    }
}
