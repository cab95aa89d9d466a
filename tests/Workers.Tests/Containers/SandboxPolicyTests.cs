using Pipelines.Workers.Containers;

namespace Pipelines.Workers.Tests.Containers;

public sealed class SandboxPolicyTests
{
    private static IReadOnlyList<string> Violations(string step, Action<ContainerOptions>? configure = null)
    {
        var options = new ContainerOptions { DockerEndpoint = "unix:///var/run/docker.sock" };
        configure?.Invoke(options);
        return new SandboxPolicy(options).Violations(TestSteps.One($"""
            pipelines:
              p:
                steps:
                  - {step}
            """));
    }

    [Fact]
    public void a_plain_step_is_allowed() =>
        Assert.Empty(Violations("{ name: s, image: alpine, network: bridge, volumes: [\"cache:/cache\"] }"));

    [Theory]
    [InlineData("host", "network: 'host' would share the host's network stack with the container")]
    [InlineData("container:db", "network: 'container:db' would join another container's network namespace")]
    public void host_and_container_networks_are_refused(string network, string expected) =>
        Assert.Equal([expected], Violations($"{{ name: s, image: alpine, network: \"{network}\" }}"));

    [Fact]
    public void a_network_outside_the_allowed_ones_is_refused() =>
        Assert.Equal(["network: 'public' is not one of the networks this worker allows (internal, db)"],
            Violations("{ name: s, image: alpine, network: public }", o => o.AllowedNetworks = ["internal", "db"]));

    [Theory]
    [InlineData("/var/run/docker.sock")]
    [InlineData("/run/docker.sock")]
    [InlineData("/home/me/.docker/run/docker.sock")]
    [InlineData("/srv/podman.sock")]
    public void an_engine_socket_is_refused_even_inside_an_allowed_folder(string socket) =>
        Assert.Contains("is or holds the container engine's socket", Assert.Single(Violations(
            $"{{ name: s, image: alpine, volumes: [\"{socket}:/engine.sock\"] }}", o => o.AllowedHostPaths = ["/"])), StringComparison.Ordinal);

    [Theory]
    [InlineData("/", "is the host's root filesystem")]
    [InlineData("/var/lib", "is or holds the host system folder /var/lib/docker")]
    [InlineData("/proc/1", "is or holds the host system folder /proc")]
    [InlineData("/sys", "is or holds the host system folder /sys")]
    public void host_system_folders_are_refused_even_when_allowed(string source, string reason) =>
        Assert.Equal([$"volumes[0]: host path '{source}' {reason}"],
            Violations($"{{ name: s, image: alpine, volumes: [\"{source}:/host\"] }}", o => o.AllowedHostPaths = ["/"]));

    [Fact]
    public void host_paths_must_be_inside_an_allowed_folder()
    {
        Assert.Equal(["volumes[0]: host path '/srv/other' is outside the host paths this worker allows (/srv/data)"],
            Violations("{ name: s, image: alpine, volumes: [\"/srv/other:/data\"] }", o => o.AllowedHostPaths = ["/srv/data"]));
        Assert.Empty(Violations("{ name: s, image: alpine, volumes: [\"/srv/data/in:/data\"] }", o => o.AllowedHostPaths = ["/srv/data"]));
        Assert.Equal(["volumes[0]: host path '/srv/data-secret' is outside the host paths this worker allows (/srv/data)"],
            Violations("{ name: s, image: alpine, volumes: [\"/srv/data-secret:/data\"] }", o => o.AllowedHostPaths = ["/srv/data"]));
    }

    [Fact]
    public void a_read_only_allowance_refuses_a_writable_mount()
    {
        Assert.Equal(["volumes[0]: host path '/srv/data' may only be mounted read-only (:ro) on this worker"],
            Violations("{ name: s, image: alpine, volumes: [\"/srv/data:/data\"] }", o => o.AllowedHostPaths = ["/srv/data:ro"]));
        Assert.Empty(Violations("{ name: s, image: alpine, volumes: [\"/srv/data:/data:ro\"] }", o => o.AllowedHostPaths = ["/srv/data:ro"]));
    }

    [Fact]
    public void a_symbolic_link_cannot_smuggle_a_refused_path_into_an_allowed_folder()
    {
        var allowed = Directory.CreateTempSubdirectory("pipelines-policy-");
        try
        {
            var link = Path.Combine(allowed.FullName, "engine");
            File.CreateSymbolicLink(link, "/var/run");
            var violation = Assert.Single(Violations($"{{ name: s, image: alpine, volumes: [\"{link}/docker.sock:/engine.sock\"] }}",
                o => o.AllowedHostPaths = [allowed.FullName]));
            Assert.Contains("is or holds the container engine's socket", violation, StringComparison.Ordinal);
        }
        finally
        {
            allowed.Delete(recursive: true);
        }
    }

    [Fact]
    public void the_exchange_folder_and_worker_labels_are_reserved() =>
        Assert.Equal(
        [
            "volumes[0]: target '/pipelines/output' is reserved for the step's inputs and outputs (/pipelines)",
            "labels.pipelines.managed: labels starting with 'pipelines.' are set by the worker; a definition may not set them",
        ], Violations("{ name: s, image: alpine, volumes: [\"cache:/pipelines/output\"], labels: { pipelines.managed: \"false\", team: data } }"));

    [Fact]
    public void limits_above_the_workers_maximum_are_refused_for_the_step_and_its_sidecars() =>
        Assert.Equal(
        [
            "resources.memory: 2g is more than this worker allows (1g)",
            "resources.cpus: 8 is more than this worker allows (4)",
            "sidecars[0] 'db' resources.pids: 5000 is more than this worker allows (1000)",
        ], Violations("{ name: s, image: alpine, resources: { memory: 2g, cpus: 8 }, sidecars: [{ name: db, image: postgres, resources: { pids: 5000 } }] }", o =>
        {
            o.MaxMemory = "1g";
            o.MaxCpus = 4;
            o.MaxPids = 1000;
        }));

    [Theory]
    [InlineData("privileged: true")]
    [InlineData("cap_add: [SYS_ADMIN]")]
    [InlineData("pid: host")]
    [InlineData("ipc: host")]
    [InlineData("devices: [\"/dev/sda:/dev/sda\"]")]
    [InlineData("security_opt: [\"seccomp=unconfined\"]")]
    [InlineData("user: \"0:0\"")]
    [InlineData("runtime: runc")]
    public void a_definition_asking_for_host_powers_is_refused_when_its_file_loads(string field)
    {
        var key = field[..field.IndexOf(':', StringComparison.Ordinal)];
        var yaml = $"""
            pipelines:
              p:
                steps:
                  - name: s
                    image: alpine
                    sidecars:
                      - name: helper
                        image: alpine
                        {field}
                    {field}
            """;

        var result = new Core.Definitions.PipelineLoader(new() { Variables = new Dictionary<string, string>() })
            .Load(System.Text.Encoding.UTF8.GetBytes(yaml), "test.yaml", Path.GetTempPath());

        Assert.False(result.Succeeded);
        Assert.Equal(
        [
            $"test.yaml:9:13: error: unknown key '{key}' in sidecar 'helper'",
            $"test.yaml:10:9: error: unknown key '{key}' in step 's'",
        ], result.Diagnostics.Select(d => d.ToString().Split(';')[0]));
    }

    [Fact]
    public void the_host_config_sandboxes_every_container()
    {
        var options = new ContainerOptions { DefaultMemory = "256m", DefaultCpus = 0.5, DefaultPids = 64, Runtime = "runsc" };
        var step = TestSteps.One("""
            pipelines:
              p:
                steps:
                  - { name: s, image: alpine, volumes: ["cache:/work"] }
            """);

        var host = new SandboxPolicy(options).HostConfigFor(step, "none", withExchangeVolume: true);

        Assert.False(host.Privileged);
        Assert.Equal(["ALL"], host.CapDrop);
        Assert.Empty(host.CapAdd);
        Assert.Equal(["no-new-privileges"], host.SecurityOpt);
        Assert.True(host.ReadonlyRootfs);
        Assert.Equal("none", host.NetworkMode);
        Assert.Equal("private", host.IpcMode);
        Assert.Equal(256L << 20, host.Memory);
        Assert.Equal(host.Memory, host.MemorySwap);
        Assert.Equal(500_000_000, host.NanoCPUs);
        Assert.Equal(64, host.PidsLimit);
        Assert.Equal("runsc", host.Runtime);
        Assert.Equal(["/tmp"], host.Tmpfs.Keys); // /work is the volume's
        Assert.Equal(["/pipelines", "/work"], host.Mounts.Select(m => m.Target));
    }
}
