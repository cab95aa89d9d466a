using System.Text.Json.Nodes;
using Pipelines.Core.Definitions;
using Pipelines.Core.Execution;

namespace Pipelines.Workers.Tests.Containers;

public sealed class RunningStepsTests : ContainerTests
{
    [DockerFact]
    public async Task a_step_returns_the_json_it_writes_to_output_json_and_records_its_image_and_runtime()
    {
        var step = TestSteps.One("""
            pipelines:
              p:
                steps:
                  - name: report
                    image: ${IMAGE}
                    command: ["sh", "-c", "echo '{\"total\": 42, \"ok\": true}' > /pipelines/output/output.json"]
            """);
        var context = TestSteps.Context(step);

        var output = await Executor.ExecuteAsync(context);

        Assert.Equal(42, output!["total"]!.GetValue<int>());
        Assert.True(output["ok"]!.GetValue<bool>());
        Assert.Equal(DockerTestEngine.TestImage, context.Details["image"]);
        Assert.StartsWith("sha256:", context.Details["image_digest"], StringComparison.Ordinal);
        Assert.Equal("runc", context.Details["runtime"]);
        Assert.Equal("0", context.Details["exit_code"]);
        Assert.Empty(await ContainersOfRunAsync(context.RunId));
    }

    [DockerFact]
    public async Task the_example_word_count_step_returns_its_output_files_by_name()
    {
        var definitions = new PipelineLoader(new PipelineLoaderOptions
        {
            Variables = new Dictionary<string, string> { ["PIPELINES_EXAMPLE_IMAGE"] = DockerTestEngine.TestImage },
        }).LoadFile(Pipelines.Tests.RepositoryRoot.File("config/pipelines.yaml"));
        Assert.True(definitions.Succeeded, string.Join('\n', definitions.Diagnostics));
        var count = definitions.Definitions!.Pipelines["word-count"].FindStep("count")!;
        var log = new RecordingStepLog();

        var output = await Executor.ExecuteAsync(TestSteps.Context(count, log));

        Assert.Equal("""{"count":"4"}""", output!.ToJsonString());
        Assert.Contains(log.Lines, l => l is { Stream: "stdout", Text: "counted" });
    }

    [DockerFact]
    public async Task a_step_that_writes_no_output_returns_null()
    {
        var step = TestSteps.One("""
            pipelines:
              p:
                steps:
                  - { name: quiet, image: "${IMAGE}", command: "true" }
            """);

        Assert.Null(await Executor.ExecuteAsync(TestSteps.Context(step)));
    }

    [DockerFact]
    public async Task a_non_zero_exit_fails_with_the_exit_code_and_the_last_log_lines()
    {
        var step = TestSteps.One("""
            pipelines:
              p:
                steps:
                  - name: broken
                    image: ${IMAGE}
                    # stdout and stderr reach the worker on separate pipes; the pause keeps their order for the assertions.
                    command: ["sh", "-c", "for i in $(seq 1 30); do echo line $i; done; sleep 0.2; echo 'no such table: orders' >&2; exit 3"]
            """);
        var context = TestSteps.Context(step);

        var failure = await Assert.ThrowsAsync<StepFailedException>(() => Executor.ExecuteAsync(context));

        Assert.Equal("exit-code", failure.Kind);
        Assert.True(failure.Retryable);
        Assert.StartsWith("step 'broken' exited with code 3.", failure.Message, StringComparison.Ordinal);
        Assert.Contains("no such table: orders", failure.Message, StringComparison.Ordinal);
        Assert.Contains("line 30", failure.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("line 5\n", failure.Message, StringComparison.Ordinal); // only the last 20 lines
        Assert.Equal("3", context.Details["exit_code"]);
        Assert.Empty(await ContainersOfRunAsync(context.RunId));
    }

    [DockerFact]
    public async Task env_command_entrypoint_and_workdir_reach_the_container()
    {
        var step = TestSteps.One("""
            pipelines:
              p:
                steps:
                  - name: shaped
                    image: ${IMAGE}
                    entrypoint: ["sh", "-c"]
                    command: ["echo \"$GREETING from $(pwd) as $0 at home in $HOME\" > /pipelines/output/said", "argv0"]
                    env: { GREETING: hello world, HOME: /tmp }
                    workdir: /tmp
            """);

        var output = await Executor.ExecuteAsync(TestSteps.Context(step));

        Assert.Equal("hello world from /tmp as argv0 at home in /tmp", output!["said"]!.GetValue<string>());
    }

    [DockerFact]
    public async Task the_payload_and_upstream_outputs_arrive_as_read_only_files_and_environment()
    {
        var step = TestSteps.One("""
            pipelines:
              p:
                steps:
                  - name: reader
                    image: ${IMAGE}
                    command:
                      - sh
                      - -c
                      - |
                        cd /pipelines/output
                        cat /pipelines/input/event.json > event
                        cat /pipelines/input/inputs.json > inputs
                        echo "$PIPELINES_EVENT" > event-env
                        echo "$PIPELINES_STEP $PIPELINES_ATTEMPT" > identity
                        echo tampered > /pipelines/input/event.json 2>/dev/null && echo writable > input-check || echo read-only > input-check
            """);
        var context = TestSteps.Context(step,
            payload: new JsonObject { ["day"] = "2026-01-01" },
            inputs: new Dictionary<string, JsonNode?> { ["fetch"] = new JsonObject { ["rows"] = 3 }, ["notify"] = null },
            attempt: 2);

        var output = await Executor.ExecuteAsync(context);

        Assert.Equal("""{"day":"2026-01-01"}""", output!["event"]!.GetValue<string>());
        Assert.Equal("""{"day":"2026-01-01"}""", output["event-env"]!.GetValue<string>());
        Assert.Equal("""{"fetch":{"rows":3},"notify":null}""", output["inputs"]!.GetValue<string>());
        Assert.Equal("reader 2", output["identity"]!.GetValue<string>());
        Assert.Equal("read-only", output["input-check"]!.GetValue<string>());
    }

    [DockerFact]
    public async Task a_host_folder_mounted_rw_is_written_and_one_mounted_ro_is_only_read()
    {
        var shared = TestSteps.WritableFolder("pipelines-volume-");
        var readOnly = TestSteps.WritableFolder("pipelines-volume-ro-");
        try
        {
            await File.WriteAllTextAsync(Path.Combine(readOnly.FullName, "config.txt"), "from the host");
            var step = TestSteps.One("""
                pipelines:
                  p:
                    steps:
                      - name: volumes
                        image: ${IMAGE}
                        volumes: ["${SHARED}:/data:rw", "${READ_ONLY}:/config:ro"]
                        command:
                          - sh
                          - -c
                          - |
                            echo written in the container > /data/result.txt
                            cat /config/config.txt > /pipelines/output/config
                            touch /config/new 2>/dev/null && echo writable > /pipelines/output/ro-check || echo read-only > /pipelines/output/ro-check
                """, new Dictionary<string, string> { ["SHARED"] = shared.FullName, ["READ_ONLY"] = readOnly.FullName });
            var executor = ExecutorWith(o => o.AllowedHostPaths = [shared.FullName, readOnly.FullName + ":ro"]);

            var output = await executor.ExecuteAsync(TestSteps.Context(step));

            Assert.Equal("written in the container\n", await File.ReadAllTextAsync(Path.Combine(shared.FullName, "result.txt")));
            Assert.Equal("from the host", output!["config"]!.GetValue<string>());
            Assert.Equal("read-only", output["ro-check"]!.GetValue<string>());
        }
        finally
        {
            shared.Delete(recursive: true);
            readOnly.Delete(recursive: true);
        }
    }

    [DockerFact]
    public async Task a_named_volume_carries_files_from_one_step_to_the_next()
    {
        var volume = $"pipelines-test-{Guid.NewGuid():N}";
        try
        {
            // Docker fills a new named volume from the image's folder it is mounted on, mode included:
            // /tmp is 1777 in the test image, so the unprivileged step may write to it.
            var steps = TestSteps.Load("""
                pipelines:
                  p:
                    steps:
                      - name: writer
                        image: ${IMAGE}
                        volumes: ["${VOLUME}:/tmp"]
                        command: ["sh", "-c", "echo from the writer > /tmp/handover"]
                      - name: reader
                        image: ${IMAGE}
                        depends_on: [writer]
                        volumes: ["${VOLUME}:/tmp:ro"]
                        command:
                          - sh
                          - -c
                          - |
                            cat /tmp/handover > /pipelines/output/handover
                            touch /tmp/more 2>/dev/null && echo writable > /pipelines/output/ro-check || echo read-only > /pipelines/output/ro-check
                """, new Dictionary<string, string> { ["VOLUME"] = volume });

            Assert.Null(await Executor.ExecuteAsync(TestSteps.Context(steps[0])));
            var output = await Executor.ExecuteAsync(TestSteps.Context(steps[1]));

            Assert.Equal("from the writer", output!["handover"]!.GetValue<string>());
            Assert.Equal("read-only", output["ro-check"]!.GetValue<string>());
        }
        finally
        {
            await Docker.Volumes.RemoveAsync(volume, force: true);
        }
    }

    [DockerFact]
    public async Task a_sidecar_is_reached_on_localhost_and_removed_after_the_step()
    {
        var step = TestSteps.One("""
            pipelines:
              p:
                steps:
                  - name: client
                    image: ${IMAGE}
                    command:
                      - sh
                      - -c
                      - |
                        for i in $(seq 1 100); do
                          wget -q -O /pipelines/output/page http://127.0.0.1:8080/ && exit 0
                          sleep 0.1
                        done
                        exit 1
                    sidecars:
                      - name: web
                        image: ${IMAGE}
                        command: ["sh", "-c", "mkdir -p /tmp/www && echo hello from the sidecar > /tmp/www/index.html && echo serving && exec httpd -f -p 127.0.0.1:8080 -h /tmp/www"]
            """);
        var log = new RecordingStepLog();
        var context = TestSteps.Context(step, log);

        var output = await Executor.ExecuteAsync(context);

        Assert.Equal("hello from the sidecar", output!["page"]!.GetValue<string>());
        Assert.Contains(log.Lines, l => l is { Stream: "stdout", Text: "[web] serving" });
        Assert.Empty(await ContainersOfRunAsync(context.RunId));
    }

    [DockerFact]
    public async Task sidecars_are_removed_when_the_step_fails()
    {
        var step = TestSteps.One("""
            pipelines:
              p:
                steps:
                  - name: failing
                    image: ${IMAGE}
                    command: ["sh", "-c", "exit 1"]
                    sidecars:
                      - { name: idle, image: "${IMAGE}", command: ["sleep", "600"] }
            """);
        var context = TestSteps.Context(step);

        await Assert.ThrowsAsync<StepFailedException>(() => Executor.ExecuteAsync(context));

        Assert.Empty(await ContainersOfRunAsync(context.RunId));
    }

    [DockerFact]
    public async Task log_lines_keep_their_stream_and_the_time_they_arrived()
    {
        var step = TestSteps.One("""
            pipelines:
              p:
                steps:
                  - name: chatty
                    image: ${IMAGE}
                    command: ["sh", "-c", "echo to stdout; echo to stderr >&2; printf 'no newline at the end'"]
            """);
        var log = new RecordingStepLog();
        var before = DateTimeOffset.UtcNow.AddSeconds(-5);

        await Executor.ExecuteAsync(TestSteps.Context(step, log));

        var output = log.Lines.Where(l => l.Stream != "system").ToList();
        Assert.Contains(output, l => l is { Stream: "stdout", Text: "to stdout" });
        Assert.Contains(output, l => l is { Stream: "stderr", Text: "to stderr" });
        Assert.Contains(output, l => l is { Stream: "stdout", Text: "no newline at the end" });
        Assert.All(output, l => Assert.InRange(l.Timestamp!.Value, before, DateTimeOffset.UtcNow.AddSeconds(5)));
        Assert.All(output, l => Assert.NotEqual(TimeSpan.Zero, l.Timestamp!.Value.TimeOfDay));
    }

    [DockerFact]
    public async Task output_beyond_the_log_cap_is_dropped_with_a_marker_and_the_error_still_quotes_the_real_end()
    {
        var step = TestSteps.One("""
            pipelines:
              p:
                steps:
                  - name: flood
                    image: ${IMAGE}
                    command: ["sh", "-c", "for i in $(seq 1 3000); do echo line $i of the flood; done; exit 2"]
            """);
        var log = new RecordingStepLog();
        var executor = ExecutorWith(o => o.LogCapBytes = 4096);

        var failure = await Assert.ThrowsAsync<StepFailedException>(() => executor.ExecuteAsync(TestSteps.Context(step, log)));

        Assert.Contains(log.Lines, l => l.Stream == "system" && l.Text.StartsWith("log truncated: this attempt's output passed 4096 bytes", StringComparison.Ordinal));
        Assert.InRange(log.Lines.Count(l => l.Stream == "stdout"), 100, 300);
        Assert.Contains("line 3000 of the flood", failure.Message, StringComparison.Ordinal);
    }

    [DockerFact]
    public async Task secrets_reach_the_container_but_never_the_log_or_the_error()
    {
        const string password = "hunter2-very-secret";
        var step = TestSteps.One("""
            pipelines:
              p:
                steps:
                  - name: leaky
                    image: ${IMAGE}
                    env: { DB_PASSWORD: "${secret:DB_PASSWORD}" }
                    command: ["sh", "-c", "echo connecting with $DB_PASSWORD; [ \"$DB_PASSWORD\" = hunter2-very-secret ] && echo matches; exit 1"]
            """);
        var log = new RecordingStepLog();

        var failure = await Assert.ThrowsAsync<StepFailedException>(() =>
            Executor.ExecuteAsync(TestSteps.Context(step, log, secrets: new Dictionary<string, string> { ["DB_PASSWORD"] = password })));

        Assert.Contains(log.Lines, l => l.Text == "matches");
        Assert.Contains(log.Lines, l => l.Text == "connecting with ***");
        Assert.DoesNotContain(password, log.Text, StringComparison.Ordinal);
        Assert.DoesNotContain(password, failure.Message, StringComparison.Ordinal);
    }

    [DockerFact]
    public async Task a_registry_password_appears_in_no_log_line_and_no_error()
    {
        const string password = "registry-pa55word";
        var step = TestSteps.One("""
            pipelines:
              p:
                steps:
                  - name: private
                    image: 127.0.0.1:9/team/loader
                    tag: "1.0"
                    registry: { username: robot, password: "${REGISTRY_PASSWORD}" }
            """);
        var log = new RecordingStepLog();

        var failure = await Assert.ThrowsAsync<StepFailedException>(() =>
            Executor.ExecuteAsync(TestSteps.Context(step, log, secrets: new Dictionary<string, string> { ["REGISTRY_PASSWORD"] = password })));

        Assert.Equal("image", failure.Kind);
        Assert.Contains("127.0.0.1:9/team/loader:1.0", failure.Message, StringComparison.Ordinal);
        Assert.Contains(log.Lines, l => l.Text == "pulling image 127.0.0.1:9/team/loader:1.0 as robot");
        Assert.DoesNotContain(password, log.Text, StringComparison.Ordinal);
        Assert.DoesNotContain(password, failure.ToString(), StringComparison.Ordinal);
    }

    [DockerFact]
    public async Task a_secret_the_worker_lacks_fails_the_step_before_anything_runs()
    {
        var step = TestSteps.One("""
            pipelines:
              p:
                steps:
                  - { name: needy, image: "${IMAGE}", env: { TOKEN: "${secret:API_TOKEN}" } }
            """);
        var context = TestSteps.Context(step);

        var failure = await Assert.ThrowsAsync<StepFailedException>(() => Executor.ExecuteAsync(context));

        Assert.Equal("secret", failure.Kind);
        Assert.False(failure.Retryable);
        Assert.Equal("step 'needy' env.TOKEN needs secret 'API_TOKEN', which this worker does not have", failure.Message);
        Assert.Empty(await ContainersOfRunAsync(context.RunId));
    }

    [DockerFact]
    public async Task the_worker_runs_no_more_containers_at_once_than_its_cap()
    {
        var shared = TestSteps.WritableFolder("pipelines-cap-");
        try
        {
            var step = TestSteps.One("""
                pipelines:
                  p:
                    steps:
                      - name: exclusive
                        image: ${IMAGE}
                        volumes: ["${SHARED}:/shared"]
                        command: ["sh", "-c", "echo start >> /shared/order; sleep 0.5; echo end >> /shared/order"]
                """, new Dictionary<string, string> { ["SHARED"] = shared.FullName });
            var executor = ExecutorWith(o =>
            {
                o.MaxConcurrentContainers = 1;
                o.AllowedHostPaths = [shared.FullName];
            });

            await Task.WhenAll(Enumerable.Range(0, 3).Select(_ => executor.ExecuteAsync(TestSteps.Context(step))));

            var order = await File.ReadAllLinesAsync(Path.Combine(shared.FullName, "order"));
            Assert.Equal(["start", "end", "start", "end", "start", "end"], order);
        }
        finally
        {
            shared.Delete(recursive: true);
        }
    }
}
