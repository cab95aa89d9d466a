using Docker.DotNet.Models;
using Pipelines.Core.Execution;

namespace Pipelines.Workers.Tests.Containers;

public sealed class ImageBuildTests : ContainerTests
{
    private readonly DirectoryInfo _root = Directory.CreateTempSubdirectory("pipelines-build-");
    private readonly HashSet<string> _images = [];

    private const string Step = """
        pipelines:
          p:
            steps:
              - name: built
                build: { context: app, args: { GREETING: hello } }
                command: ["sh", "-c", "cat /app/message.txt > /pipelines/output/message; echo $GREETING > /pipelines/output/greeting"]
        """;

    public override async Task InitializeAsync()
    {
        var app = _root.CreateSubdirectory("app");
        await File.WriteAllTextAsync(Path.Combine(app.FullName, "Dockerfile"), $"""
            FROM {DockerTestEngine.TestImage}
            ARG GREETING
            ENV GREETING=$GREETING
            COPY message.txt /app/message.txt
            """);
        await File.WriteAllTextAsync(Path.Combine(app.FullName, "message.txt"), "first version");
        // An image built by an earlier test run must not count as this run's cache hit.
        await File.WriteAllTextAsync(Path.Combine(app.FullName, "test-run.txt"), Guid.NewGuid().ToString());
    }

    [DockerFact]
    public async Task a_built_image_is_reused_while_its_context_is_unchanged_and_rebuilt_when_it_changes()
    {
        var step = TestSteps.One(Step);
        var executor = ExecutorWith(o => o.BuildContextRoot = _root.FullName);

        var firstLog = new RecordingStepLog();
        var first = TestSteps.Context(step, firstLog);
        var firstOutput = await executor.ExecuteAsync(first);
        _images.Add(first.Details["image"]);

        var secondLog = new RecordingStepLog();
        var second = TestSteps.Context(step, secondLog);
        await executor.ExecuteAsync(second);

        await File.WriteAllTextAsync(Path.Combine(_root.FullName, "app", "message.txt"), "second version");
        var third = TestSteps.Context(step);
        var thirdOutput = await executor.ExecuteAsync(third);
        _images.Add(third.Details["image"]);

        Assert.Equal("first version", firstOutput!["message"]!.GetValue<string>());
        Assert.Equal("hello", firstOutput["greeting"]!.GetValue<string>());
        Assert.StartsWith("pipelines-build/built:", first.Details["image"], StringComparison.Ordinal);
        Assert.Contains(firstLog.Lines, l => l.Stream == "system" && l.Text.StartsWith("build: Step", StringComparison.Ordinal) && l.Text.EndsWith(": COPY message.txt /app/message.txt", StringComparison.Ordinal));
        Assert.Equal(first.Details["image_digest"], second.Details["image_digest"]);
        Assert.Contains(secondLog.Lines, l => l.Text.EndsWith($"is unchanged; using image {first.Details["image"]}", StringComparison.Ordinal));
        Assert.DoesNotContain(secondLog.Lines, l => l.Text.StartsWith("build: Step", StringComparison.Ordinal));
        Assert.NotEqual(first.Details["image"], third.Details["image"]);
        Assert.Equal("second version", thirdOutput!["message"]!.GetValue<string>());
    }

    [DockerFact]
    public async Task a_failed_build_fails_the_step_with_the_build_error_and_its_last_lines()
    {
        await File.WriteAllTextAsync(Path.Combine(_root.FullName, "app", "Dockerfile"), $"""
            FROM {DockerTestEngine.TestImage}
            COPY missing.txt /missing.txt
            """);
        var executor = ExecutorWith(o => o.BuildContextRoot = _root.FullName);

        var failure = await Assert.ThrowsAsync<StepFailedException>(() => executor.ExecuteAsync(TestSteps.Context(TestSteps.One(Step))));

        Assert.Equal("build", failure.Kind);
        Assert.StartsWith("step 'built': image build failed: COPY failed", failure.Message, StringComparison.Ordinal);
        Assert.Contains("Step 2/", failure.Message, StringComparison.Ordinal);
    }

    [DockerFact]
    public async Task a_missing_build_context_is_reported_without_retrying()
    {
        var step = TestSteps.One(Step.Replace("context: app", "context: nowhere", StringComparison.Ordinal));
        var executor = ExecutorWith(o => o.BuildContextRoot = _root.FullName);

        var failure = await Assert.ThrowsAsync<StepFailedException>(() => executor.ExecuteAsync(TestSteps.Context(step)));

        Assert.Equal("build", failure.Kind);
        Assert.False(failure.Retryable);
        Assert.Equal($"step 'built' cannot be built: build.context 'nowhere' is not a folder on this worker (looked at {Path.Combine(_root.FullName, "nowhere")})", failure.Message);
    }

    [DockerFact]
    public async Task a_sidecar_whose_image_has_a_health_check_is_healthy_before_the_step_starts()
    {
        var web = _root.CreateSubdirectory("web");
        await File.WriteAllTextAsync(Path.Combine(web.FullName, "Dockerfile"), $"""
            FROM {DockerTestEngine.TestImage}
            HEALTHCHECK --interval=100ms --timeout=1s --retries=100 CMD wget -q -O /dev/null http://127.0.0.1:8080/
            CMD ["sh", "-c", "sleep 1; mkdir -p /tmp/www; echo ready > /tmp/www/index.html; exec httpd -f -p 127.0.0.1:8080 -h /tmp/www"]
            """);
        await File.WriteAllTextAsync(Path.Combine(web.FullName, "test-run.txt"), Guid.NewGuid().ToString());
        var step = TestSteps.One("""
            pipelines:
              p:
                steps:
                  - name: impatient
                    image: ${IMAGE}
                    command: ["wget", "-q", "-O", "/pipelines/output/page", "http://127.0.0.1:8080/"]
                    sidecars:
                      - { name: web, build: { context: web } }
            """);
        var executor = ExecutorWith(o => o.BuildContextRoot = _root.FullName);
        var log = new RecordingStepLog();

        var output = await executor.ExecuteAsync(TestSteps.Context(step, log));

        Assert.Equal("ready", output!["page"]!.GetValue<string>());
        _images.Add(log.Lines.Select(l => l.Text).Single(t => t.StartsWith("build: built ", StringComparison.Ordinal)).Split(' ')[2]);
    }

    public override async Task DisposeAsync()
    {
        foreach (var image in _images)
        {
            await Docker.Images.DeleteImageAsync(image, new ImageDeleteParameters { Force = true });
        }
        _root.Delete(recursive: true);
        await base.DisposeAsync();
    }
}
