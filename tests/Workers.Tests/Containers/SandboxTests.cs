using System.Net;
using System.Net.Sockets;
using Docker.DotNet.Models;
using Pipelines.Core.Execution;

namespace Pipelines.Workers.Tests.Containers;

public sealed class SandboxTests : ContainerTests
{
    [DockerFact]
    public async Task escape_attempts_from_an_image_with_a_setuid_root_binary_all_fail_and_the_step_still_completes()
    {
        // The attacker's image: busybox copied setuid root, which would make any process it starts root.
        var root = Directory.CreateTempSubdirectory("pipelines-escape-");
        using var hostService = new TcpListener(IPAddress.Loopback, 0);
        hostService.Start();
        string? image = null;
        try
        {
            await File.WriteAllTextAsync(Path.Combine(root.FullName, "Dockerfile"), $"""
                FROM {DockerTestEngine.TestImage}
                RUN mkdir /opt && cp /bin/busybox /opt/busybox && chmod 4755 /opt/busybox
                """);
            var step = TestSteps.One("""
                pipelines:
                  p:
                    steps:
                      - name: escape
                        build: { context: . }
                        env: { HOST_PORT: "${PORT}" }
                        command:
                          - sh
                          - -c
                          - |
                            cd /pipelines/output
                            attempt() { name=$1; shift; if "$@" >/dev/null 2>&1; then echo escaped > $name; else echo refused > $name; fi; }
                            attempt write-root-fs sh -c 'echo pwned > /etc/passwd'
                            attempt replace-a-binary touch /bin/sh
                            attempt mount mount -t tmpfs none /tmp
                            attempt chroot chroot / true
                            attempt user-namespace unshare -r true
                            attempt chown-to-root chown 0 /work
                            attempt create-device mknod /tmp/disk b 8 0
                            attempt setuid-root-write /opt/busybox touch /escaped
                            attempt reach-host-service nc -w 2 127.0.0.1 $HOST_PORT
                            attempt find-engine-socket test -e /var/run/docker.sock
                            /opt/busybox grep -E '^(Uid|CapEff):' /proc/self/status | tr -s '\t' ' ' > setuid-root-ids
                """, new Dictionary<string, string> { ["PORT"] = ((IPEndPoint)hostService.LocalEndpoint).Port.ToString(System.Globalization.CultureInfo.InvariantCulture) });
            var context = TestSteps.Context(step);

            var output = await ExecutorWith(o => o.BuildContextRoot = root.FullName).ExecuteAsync(context);
            image = context.Details["image"];

            var refused = new[]
            {
                "chown-to-root", "chroot", "create-device", "find-engine-socket", "mount", "reach-host-service",
                "replace-a-binary", "setuid-root-write", "user-namespace", "write-root-fs",
            }.ToDictionary(name => name, _ => "refused");
            Assert.Equal(refused, output!.AsObject().Where(p => p.Key != "setuid-root-ids").ToDictionary(p => p.Key, p => p.Value!.GetValue<string>()));
            // no-new-privileges: the setuid bit is ignored, so not even the saved user id becomes root.
            Assert.Equal("Uid: 65534 65534 65534 65534\nCapEff: 0000000000000000", output["setuid-root-ids"]!.GetValue<string>());
            Assert.False(hostService.Pending(), "a container reached a service listening on the worker host's loopback");
        }
        finally
        {
            if (image is not null)
            {
                await Docker.Images.DeleteImageAsync(image, new ImageDeleteParameters { Force = true });
            }
            root.Delete(recursive: true);
        }
    }

    [DockerFact]
    public async Task a_step_runs_as_nobody_without_capabilities_on_a_read_only_root_with_no_network()
    {
        var step = TestSteps.One("""
            pipelines:
              p:
                steps:
                  - name: probe
                    image: ${IMAGE}
                    command:
                      - sh
                      - -c
                      - |
                        pwd > /pipelines/output/workdir
                        cd /pipelines/output
                        id -u > uid
                        touch /escape 2>/dev/null && echo writable > rootfs || echo read-only > rootfs
                        touch /tmp/scratch && touch /work/scratch && echo writable > scratch
                        ls /sys/class/net | tr '\n' ' ' > interfaces
                        grep -E '^(CapEff|CapPrm|NoNewPrivs):' /proc/self/status | tr -s '\t' ' ' > privileges
                        wget -q -T 2 -O /dev/null http://1.1.1.1/ 2>/dev/null && echo reachable > network || echo unreachable > network
            """);

        var output = await Executor.ExecuteAsync(TestSteps.Context(step));

        Assert.Equal("65534", output!["uid"]!.GetValue<string>());
        Assert.Equal("read-only", output["rootfs"]!.GetValue<string>());
        Assert.Equal("writable", output["scratch"]!.GetValue<string>());
        Assert.Equal("/work", output["workdir"]!.GetValue<string>());
        Assert.Equal("lo ", output["interfaces"]!.GetValue<string>());
        Assert.Equal("CapPrm: 0000000000000000\nCapEff: 0000000000000000\nNoNewPrivs: 1", output["privileges"]!.GetValue<string>());
        Assert.Equal("unreachable", output["network"]!.GetValue<string>());
    }

    [DockerFact]
    public async Task a_fork_bomb_stops_at_the_pids_limit_and_the_worker_carries_on()
    {
        var steps = TestSteps.Load("""
            pipelines:
              p:
                steps:
                  - name: bomb
                    image: ${IMAGE}
                    resources: { pids: 20 }
                    command: ["sh", "-c", "bomb() { bomb | bomb & }; bomb; sleep 5"]
                  - { name: after, image: "${IMAGE}", command: "true" }
            """);
        var log = new RecordingStepLog();
        var bomb = TestSteps.Context(steps[0], log);

        try
        {
            await Executor.ExecuteAsync(bomb);
        }
        catch (StepFailedException failure) when (failure.Kind == "exit-code")
        {
            // Whether the shell survives its children's failed forks is up to the shell; the limit holding is what counts.
        }

        Assert.Contains(log.Lines, l => l.Stream == "stderr" && l.Text.Contains("can't fork", StringComparison.Ordinal));
        Assert.Empty(await ContainersOfRunAsync(bomb.RunId));
        Assert.Null(await Executor.ExecuteAsync(TestSteps.Context(steps[1])));
    }

    [DockerFact]
    public async Task a_step_killed_at_its_memory_limit_fails_as_out_of_memory()
    {
        var step = TestSteps.One("""
            pipelines:
              p:
                steps:
                  - name: hungry
                    image: ${IMAGE}
                    resources: { memory: 8m }
                    command: ["sh", "-c", "echo allocating; dd if=/dev/zero of=/dev/null bs=64M count=1"]
            """);
        var context = TestSteps.Context(step);

        var failure = await Assert.ThrowsAsync<StepFailedException>(() => Executor.ExecuteAsync(context));

        Assert.Equal("oom", failure.Kind);
        // The engine confirms the OOM kill unless the process dies before it watches: both say so.
        Assert.Matches(@"^step 'hungry' (ran out of memory: the kernel killed it at its 8m limit \(exit code 137\)|was killed \(exit code 137, SIGKILL\), most likely out of memory at its 8m limit)", failure.Message);
        Assert.Contains("allocating", failure.Message, StringComparison.Ordinal);
        Assert.Empty(await ContainersOfRunAsync(context.RunId));
    }

    [DockerFact]
    public async Task the_engine_keeps_no_more_of_a_step_flooding_stdout_than_the_log_cap()
    {
        // 8 MB of output, then the step stays up so that the engine's own copy of its log can be read.
        var step = TestSteps.One("""
            pipelines:
              p:
                steps:
                  - name: flood
                    image: ${IMAGE}
                    command: ["sh", "-c", "yes 'a line of the flood, about sixty bytes long, again and again' | head -c 8000000; exec sleep 600"]
            """);
        using var cancellation = new CancellationTokenSource();
        var context = TestSteps.Context(step, cancellationToken: cancellation.Token);

        var execution = Executor.ExecuteAsync(context);
        string? container = null;
        await Wait.UntilAsync(async () =>
        {
            container = (await ContainersOfRunAsync(context.RunId)).FirstOrDefault(c => c.State == "running")?.ID;
            if (container is null)
            {
                return false;
            }
            // The flood is over once the shell has become the sleep.
            var processes = await Docker.Containers.ListProcessesAsync(container, new ContainerListProcessesParameters());
            return processes.Processes is [var only] && string.Join(' ', only).EndsWith("sleep 600", StringComparison.Ordinal);
        }, "saw the step's flood end");
        using var engineLog = await Docker.Containers.GetContainerLogsAsync(container!, tty: false, new ContainerLogsParameters { ShowStdout = true, ShowStderr = true });
        var (stdout, stderr) = await engineLog.ReadOutputToEndAsync(CancellationToken.None);
        await cancellation.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => execution);

        Assert.InRange(stdout.Length + stderr.Length, 1, 1 << 20);
    }

    [DockerFact]
    public async Task a_refused_step_fails_before_any_container_or_log_line_exists()
    {
        var step = TestSteps.One("""
            pipelines:
              p:
                steps:
                  - name: escape
                    image: ${IMAGE}
                    network: host
                    volumes: ["/var/run/docker.sock:/var/run/docker.sock", "/home:/home"]
                    labels: { pipelines.worker: someone-else }
                    sidecars:
                      - { name: helper, image: "${IMAGE}", volumes: ["/proc:/host-proc:ro"] }
            """);
        var log = new RecordingStepLog();
        var context = TestSteps.Context(step, log);

        var failure = await Assert.ThrowsAsync<StepFailedException>(() => Executor.ExecuteAsync(context));

        Assert.Equal("policy", failure.Kind);
        Assert.False(failure.Retryable);
        Assert.Equal("""
            step 'escape' is refused by this worker's sandbox policy; nothing was started:
              - volumes[0]: host path '/var/run/docker.sock' is or holds the container engine's socket; mounting it would hand the container control of the host
              - volumes[1]: host path '/home' is not allowed: this worker allows no host paths (setting AllowedHostPaths)
              - labels.pipelines.worker: labels starting with 'pipelines.' are set by the worker; a definition may not set them
              - sidecars[0] 'helper' volumes[0]: host path '/proc' is or holds the host system folder /proc
              - network: 'host' would share the host's network stack with the container
            """.ReplaceLineEndings("\n"), failure.Message);
        Assert.Empty(log.Lines);
        Assert.Empty(await ContainersOfRunAsync(context.RunId));
    }
}
