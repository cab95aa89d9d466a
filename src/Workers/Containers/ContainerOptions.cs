using Pipelines.Core.Definitions;

namespace Pipelines.Workers.Containers;

/// <summary>
/// Configuration section <c>Pipelines:Containers</c>: how this worker runs container steps.
/// The contract a step's container sees is described in docs/containers.md.
/// </summary>
public sealed class ContainerOptions
{
    public const string Section = "Pipelines:Containers";

    /// <summary>
    /// Docker engine endpoint, e.g. <c>unix:///var/run/docker.sock</c> or <c>tcp://10.0.0.5:2375</c>.
    /// Default: the <c>DOCKER_HOST</c> environment variable, else the local socket.
    /// </summary>
    public string? DockerEndpoint { get; set; }

    /// <summary>
    /// Names this worker in the labels of its containers; at start-up the worker removes containers
    /// labelled with it (left by a crash). It must stay the same across restarts and differ between
    /// workers sharing a Docker engine. Default: the host name (a pod's name in Kubernetes).
    /// </summary>
    public string WorkerId { get; set; } = Environment.MachineName;

    /// <summary>Steps this worker runs in containers at once; a step and its sidecars count as one. Default: the processor count, at least 2.</summary>
    public int MaxConcurrentContainers { get; set; } = Math.Max(2, Environment.ProcessorCount);

    /// <summary>Memory limit of a container whose definition sets none, e.g. <c>512m</c>. Default 512m.</summary>
    public string DefaultMemory { get; set; } = "512m";

    /// <summary>CPU limit in cores of a container whose definition sets none. Default 1.</summary>
    public double DefaultCpus { get; set; } = 1;

    /// <summary>Process limit of a container whose definition sets none; stops fork bombs. Default 256.</summary>
    public int DefaultPids { get; set; } = 256;

    /// <summary>Largest memory limit a definition may ask for; a step asking more is refused. Default: no maximum.</summary>
    public string? MaxMemory { get; set; }

    /// <summary>Largest CPU limit a definition may ask for. Default: no maximum.</summary>
    public double? MaxCpus { get; set; }

    /// <summary>Largest process limit a definition may ask for. Default: no maximum.</summary>
    public int? MaxPids { get; set; }

    /// <summary>OCI runtime of every container: <c>runc</c> (default), or <c>runsc</c> (gVisor) / <c>kata</c> where the engine has them.</summary>
    public string Runtime { get; set; } = "runc";

    /// <summary>User (<c>UID:GID</c>, numeric) every container runs as. Default 65534:65534 (nobody); root is refused.</summary>
    public string User { get; set; } = "65534:65534";

    /// <summary>
    /// Host folders a definition may mount (<c>PATH</c>, or <c>PATH:ro</c> to allow read-only mounts
    /// only). A host path outside every entry is refused. Default: none.
    /// </summary>
    public List<string> AllowedHostPaths { get; set; } = [];

    /// <summary>Docker networks a step may join with <c>network:</c>. Default: any except <c>host</c> and <c>container:…</c>, which are always refused.</summary>
    public List<string> AllowedNetworks { get; set; } = [];

    /// <summary>Bytes of stdout/stderr kept per attempt; beyond it the log says it was truncated. Default 1 MiB.</summary>
    public long LogCapBytes { get; set; } = 1 << 20;

    /// <summary>Last log lines quoted in the error of a failed step. Default 20.</summary>
    public int ErrorLogLines { get; set; } = 20;

    /// <summary>Largest output (the files under /pipelines/output) a step may return. Default 1 MiB.</summary>
    public long MaxOutputBytes { get; set; } = 1 << 20;

    /// <summary>Size of each writable tmpfs (/tmp and /work); it counts against the memory limit. Default 64m.</summary>
    public string TmpfsSize { get; set; } = "64m";

    /// <summary>Folder that relative <c>build.context</c> paths start from. Default: the current directory.</summary>
    public string? BuildContextRoot { get; set; }

    /// <summary>Network of <c>RUN</c> instructions in image builds, e.g. <c>none</c>. Default: the engine's default.</summary>
    public string? BuildNetwork { get; set; }

    /// <summary>Largest build context sent to the engine. Default 256 MiB.</summary>
    public long MaxBuildContextBytes { get; set; } = 256L << 20;

    /// <summary>Pre-started network namespaces that spare steps the cost of creating their own (see <see cref="NetworkPoolOptions"/>).</summary>
    public NetworkPoolOptions NetworkPool { get; set; } = new();

    internal string ResolvedEndpoint =>
        DockerEndpoint is { Length: > 0 } endpoint ? endpoint
        : Environment.GetEnvironmentVariable("DOCKER_HOST") is { Length: > 0 } fromEnvironment ? fromEnvironment
        : OperatingSystem.IsWindows() ? "npipe://./pipe/docker_engine"
        : "unix:///var/run/docker.sock";

    internal long DefaultMemoryBytes => ByteSize.TryParse(DefaultMemory, out var size) ? size.Bytes : 512L << 20;

    internal long? MaxMemoryBytes => MaxMemory is not null && ByteSize.TryParse(MaxMemory, out var size) ? size.Bytes : null;

    internal long TmpfsBytes => ByteSize.TryParse(TmpfsSize, out var size) ? size.Bytes : 64L << 20;

    internal (int Uid, int Gid) UserIds
    {
        get
        {
            var parts = User.Split(':');
            return (int.Parse(parts[0], System.Globalization.CultureInfo.InvariantCulture),
                parts.Length > 1 ? int.Parse(parts[1], System.Globalization.CultureInfo.InvariantCulture) : 65534);
        }
    }
}

/// <summary>
/// Setting <c>Pipelines:Containers:NetworkPool</c>. Creating a container's own network namespace is
/// the largest part of starting a sandboxed container (about 80 ms of the 260 ms a trivial step takes
/// on a 2-core VM; bench/README.md). The worker keeps <see cref="Size"/> namespaces ready, each held by a sleeping
/// container of <see cref="Image"/> in the same sandbox, with no network. A step that would run with
/// no network and has no sidecars joins one of them instead of creating its own; each namespace serves
/// one step and is removed after it, in the background; fresh ones are made while no step runs. A step
/// never waits for the pool: when none is ready, it creates its own namespace as usual.
/// </summary>
public sealed class NetworkPoolOptions
{
    /// <summary>
    /// Namespaces kept ready; 0, the default, turns the pool off. 2 suits a long-running worker; a
    /// one-run process such as the CLI's <c>run</c> gains nothing from it.
    /// </summary>
    public int Size { get; set; }

    /// <summary>Image of the holders, pulled when missing: anything that sleeps until it is killed. Default <c>registry.k8s.io/pause:3.10</c>, Kubernetes' own holder.</summary>
    public string Image { get; set; } = "registry.k8s.io/pause:3.10";

    /// <summary>Command of the holders for an image that does not sleep by itself, e.g. <c>["sleep", "2147483647"]</c>. Default: the image's own.</summary>
    public List<string> Command { get; set; } = [];
}
