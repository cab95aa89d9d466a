using System.Globalization;
using Docker.DotNet.Models;
using Pipelines.Core.Definitions;
using Pipelines.Core.Execution;

namespace Pipelines.Workers.Containers;

/// <summary>
/// What a step's containers may do on this worker. <see cref="Enforce"/> refuses a definition that
/// asks for more than the worker's policy allows, before anything is pulled or created;
/// <see cref="HostConfigFor"/> turns an allowed definition into the sandboxed Docker host settings.
/// Privileged mode, added capabilities, devices and host PID/IPC namespaces have no key in the
/// definition format at all, and the host settings always deny them.
/// </summary>
public sealed class SandboxPolicy
{
    /// <summary>Where the step's inputs and outputs live in its container; definitions may not mount over it.</summary>
    public const string ExchangeDirectory = "/pipelines";
    public const string InputDirectory = "/pipelines/input";
    public const string OutputDirectory = "/pipelines/output";
    /// <summary>The writable tmpfs a step works in when neither its definition nor its image names a working directory.</summary>
    public const string WorkDirectory = "/work";

    // Mounting any of these (or a folder containing one) hands the container the host or its engine.
    private static readonly string[] DeniedHostPaths =
        ["/proc", "/sys", "/dev", "/boot", "/run", "/var/run", "/var/lib/docker", "/var/lib/containerd"];

    private static readonly string[] EngineSocketNames = ["docker.sock", "containerd.sock", "podman.sock", "crio.sock"];

    private readonly ContainerOptions _options;
    private readonly HostPathRule[] _allowedHostPaths;
    private readonly string? _engineSocket;

    public SandboxPolicy(ContainerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options;
        _allowedHostPaths = options.AllowedHostPaths
            .Select(p => HostPathRule.TryParse(p, out var rule) ? rule : null)
            .OfType<HostPathRule>()
            .Select(r => r with { Path = RealPath(r.Path) })
            .ToArray();
        _engineSocket = Uri.TryCreate(options.ResolvedEndpoint, UriKind.Absolute, out var endpoint) && endpoint.Scheme == "unix"
            ? RealPath(endpoint.AbsolutePath)
            : null;
    }

    /// <summary>Throws a non-retryable <see cref="StepFailedException"/> (kind <c>policy</c>) listing every rule the step breaks.</summary>
    public void Enforce(StepDefinition step)
    {
        var violations = Violations(step);
        if (violations.Count > 0)
        {
            throw new StepFailedException(
                $"step '{step.Name}' is refused by this worker's sandbox policy; nothing was started:\n  - {string.Join("\n  - ", violations)}",
                "policy")
            { Retryable = false };
        }
    }

    /// <summary>Every rule the step (with its sidecars) breaks, each naming the container and the field; empty when allowed.</summary>
    public IReadOnlyList<string> Violations(StepDefinition step)
    {
        ArgumentNullException.ThrowIfNull(step);
        var violations = new List<string>();
        CheckContainer(step, "", violations);
        for (var i = 0; i < step.Sidecars.Count; i++)
        {
            CheckContainer(step.Sidecars[i], $"sidecars[{i}] '{step.Sidecars[i].Name}' ", violations);
        }
        CheckNetwork(step.Network, violations);
        if (step.Build is { } build)
        {
            var context = Path.GetFullPath(build.Context, _options.BuildContextRoot ?? Directory.GetCurrentDirectory());
            if (DeniedReason(RealPath(context)) is { } reason)
            {
                violations.Add($"build.context: '{build.Context}' {reason}");
            }
        }
        return violations;
    }

    private void CheckContainer(ContainerDefinition container, string where, List<string> violations)
    {
        for (var i = 0; i < container.Volumes.Count; i++)
        {
            var volume = container.Volumes[i];
            var field = $"{where}volumes[{i}]";
            if (IsSameOrUnder(NormalizeTarget(volume.Target), ExchangeDirectory))
            {
                violations.Add($"{field}: target '{volume.Target}' is reserved for the step's inputs and outputs ({ExchangeDirectory})");
            }
            if (volume.IsHostPath && HostPathViolation(volume) is { } reason)
            {
                violations.Add($"{field}: host path '{volume.Source}' {reason}");
            }
        }
        foreach (var key in container.Labels.Keys.Where(k => k.StartsWith(ContainerLabels.Prefix, StringComparison.Ordinal)))
        {
            violations.Add($"{where}labels.{key}: labels starting with '{ContainerLabels.Prefix}' are set by the worker; a definition may not set them");
        }
        if (container.Resources is { } resources)
        {
            if (resources.Memory is { } memory && _options.MaxMemoryBytes is { } maxMemory && memory.Bytes > maxMemory)
            {
                violations.Add($"{where}resources.memory: {memory} is more than this worker allows ({_options.MaxMemory})");
            }
            if (resources.Cpus is { } cpus && _options.MaxCpus is { } maxCpus && cpus > maxCpus)
            {
                violations.Add($"{where}resources.cpus: {cpus} is more than this worker allows ({maxCpus})");
            }
            if (resources.Pids is { } pids && _options.MaxPids is { } maxPids && pids > maxPids)
            {
                violations.Add($"{where}resources.pids: {pids} is more than this worker allows ({maxPids})");
            }
        }
    }

    private void CheckNetwork(string? network, List<string> violations)
    {
        if (network is null or "none")
        {
            return;
        }
        if (network == "host")
        {
            violations.Add("network: 'host' would share the host's network stack with the container");
        }
        else if (network.StartsWith("container:", StringComparison.Ordinal))
        {
            violations.Add($"network: '{network}' would join another container's network namespace");
        }
        else if (_options.AllowedNetworks.Count > 0 && !_options.AllowedNetworks.Contains(network, StringComparer.Ordinal))
        {
            violations.Add($"network: '{network}' is not one of the networks this worker allows ({string.Join(", ", _options.AllowedNetworks)})");
        }
    }

    private string? HostPathViolation(VolumeMount volume)
    {
        var path = RealPath(volume.Source);
        if (DeniedReason(path) is { } denied)
        {
            return denied;
        }
        var rule = _allowedHostPaths.FirstOrDefault(r => IsSameOrUnder(path, r.Path));
        if (rule is null)
        {
            return _allowedHostPaths.Length == 0
                ? "is not allowed: this worker allows no host paths (setting AllowedHostPaths)"
                : $"is outside the host paths this worker allows ({string.Join(", ", _options.AllowedHostPaths)})";
        }
        return rule.ReadOnlyOnly && !volume.ReadOnly ? $"may only be mounted read-only (:ro) on this worker" : null;
    }

    private string? DeniedReason(string path)
    {
        if (EngineSocketNames.Contains(Path.GetFileName(path), StringComparer.Ordinal)
            || (_engineSocket is not null && (path == _engineSocket || IsSameOrUnder(_engineSocket, path) && path != "/")))
        {
            return "is or holds the container engine's socket; mounting it would hand the container control of the host";
        }
        if (path == "/")
        {
            return "is the host's root filesystem";
        }
        return DeniedHostPaths.FirstOrDefault(denied => IsSameOrUnder(path, denied) || IsSameOrUnder(denied, path)) is { } system
            ? $"is or holds the host system folder {system}"
            : null;
    }

    /// <summary>
    /// The sandboxed Docker host settings of one container of a step. <paramref name="networkMode"/>
    /// is <c>none</c>, a network name, or <c>container:ID</c> to join a sidecar's network namespace;
    /// <paramref name="withExchangeVolume"/> mounts the per-attempt volume holding /pipelines/input and /pipelines/output.
    /// </summary>
    internal HostConfig HostConfigFor(ContainerDefinition container, string networkMode, bool withExchangeVolume)
    {
        var memory = container.Resources?.Memory?.Bytes ?? _options.DefaultMemoryBytes;
        var cpus = container.Resources?.Cpus ?? _options.DefaultCpus;
        var mounts = new List<Mount>();
        if (withExchangeVolume)
        {
            // An anonymous volume: it goes away with the container, and unlike a host folder it also
            // works when the engine runs on another machine than the worker.
            mounts.Add(new Mount { Type = "volume", Target = ExchangeDirectory });
        }
        mounts.AddRange(container.Volumes.Select(v => new Mount
        {
            Type = v.IsHostPath ? "bind" : "volume",
            Source = v.Source,
            Target = v.Target,
            ReadOnly = v.ReadOnly,
        }));
        var (uid, gid) = _options.UserIds;
        var tmpfs = $"rw,nosuid,nodev,size={_options.TmpfsBytes}";
        var scratch = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["/tmp"] = $"{tmpfs},mode=1777",
            [WorkDirectory] = $"{tmpfs},uid={uid},gid={gid},mode=0700",
        };
        foreach (var target in container.Volumes.Select(v => NormalizeTarget(v.Target)))
        {
            scratch.Remove(target);
        }
        var host = Sandboxed(networkMode, memory, cpus, container.Resources?.Pids ?? _options.DefaultPids);
        host.Mounts = mounts;
        host.Tmpfs = scratch;
        return host;
    }

    /// <summary>
    /// The host settings of a pre-started network namespace holder (<see cref="NetworkPool"/>): the same
    /// sandbox with no network, small limits (it only sleeps) and nothing mounted.
    /// </summary>
    internal HostConfig NamespaceHolderHostConfig() => Sandboxed("none", memory: 16L << 20, cpus: 0.1, pids: 8);

    private HostConfig Sandboxed(string networkMode, long memory, double cpus, long pids) => new()
    {
        Privileged = false,
        CapDrop = ["ALL"],
        CapAdd = [],
        SecurityOpt = ["no-new-privileges"],
        ReadonlyRootfs = true,
        NetworkMode = networkMode,
        IpcMode = "private",
        Memory = memory,
        MemorySwap = memory,
        NanoCPUs = (long)(cpus * 1_000_000_000),
        PidsLimit = pids,
        Runtime = _options.Runtime,
        // The worker reads the output through its attach stream; the engine's own copy of it (on its
        // disk, by default with no limit) is kept for `docker logs` only, so it gets the worker's cap.
        // Without it, a step writing stdout as fast as it can fills the engine's disk until its timeout.
        LogConfig = new LogConfig
        {
            Type = "json-file",
            Config = new Dictionary<string, string>
            {
                ["max-size"] = _options.LogCapBytes.ToString(CultureInfo.InvariantCulture),
                ["max-file"] = "1",
            },
        },
    };

    private static string NormalizeTarget(string target) => target.Length > 1 ? target.TrimEnd('/') : target;

    internal static bool IsSameOrUnder(string path, string root) =>
        root == "/" || path == root || path.StartsWith(root.TrimEnd('/') + "/", StringComparison.Ordinal);

    /// <summary>The path with every symbolic link resolved, so a link cannot smuggle a denied path past the checks.</summary>
    internal static string RealPath(string path)
    {
        var current = Path.GetFullPath(path);
        for (var hops = 0; hops < 40; hops++)
        {
            var resolved = ResolveFirstLink(current);
            if (resolved is null)
            {
                return current;
            }
            current = resolved;
        }
        return current;
    }

    private static string? ResolveFirstLink(string path)
    {
        var parts = path.Split('/', StringSplitOptions.RemoveEmptyEntries);
        var prefix = "/";
        for (var i = 0; i < parts.Length; i++)
        {
            var candidate = Path.Combine(prefix, parts[i]);
            string? target;
            try
            {
                target = new FileInfo(candidate).LinkTarget;
            }
            catch (IOException)
            {
                return null;
            }
            catch (UnauthorizedAccessException)
            {
                return null;
            }
            if (target is not null)
            {
                var rest = string.Join('/', parts.Skip(i + 1));
                return Path.GetFullPath(Path.Combine(Path.GetFullPath(target, prefix), rest));
            }
            prefix = candidate;
        }
        return null;
    }
}

/// <summary>One entry of <see cref="ContainerOptions.AllowedHostPaths"/>: <c>PATH</c> or <c>PATH:ro</c>.</summary>
internal sealed record HostPathRule(string Path, bool ReadOnlyOnly)
{
    public static bool TryParse(string text, out HostPathRule rule)
    {
        var readOnly = text.EndsWith(":ro", StringComparison.Ordinal);
        var path = readOnly ? text[..^3] : text;
        rule = new HostPathRule(path.Length > 1 ? path.TrimEnd('/') : path, readOnly);
        return path.StartsWith('/');
    }
}
