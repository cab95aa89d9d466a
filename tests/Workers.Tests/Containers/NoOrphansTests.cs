using System.Diagnostics;
using Docker.DotNet.Models;
using Pipelines.Core.Execution;
using Pipelines.Workers.Containers;

namespace Pipelines.Workers.Tests.Containers;

public sealed class NoOrphansTests : ContainerTests
{
    private const string Sleeper = """
        pipelines:
          p:
            steps:
              - name: sleeper
                image: ${IMAGE}
                timeout: 2s
                command: ["sh", "-c", "echo ready; exec sleep 600"]
                sidecars:
                  - { name: companion, image: "${IMAGE}", command: ["sleep", "600"] }
        """;

    [DockerFact]
    public async Task a_step_past_its_timeout_is_killed_removed_and_fails_as_timed_out()
    {
        var context = TestSteps.Context(TestSteps.One(Sleeper));
        var clock = Stopwatch.StartNew();

        var failure = await Assert.ThrowsAsync<StepFailedException>(() => Executor.ExecuteAsync(context));

        Assert.Equal("timeout", failure.Kind);
        Assert.Equal("step 'sleeper' timed out after 2s; its containers were killed and removed", failure.Message);
        Assert.InRange(clock.Elapsed, TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(20));
        Assert.Empty(await ContainersOfRunAsync(context.RunId));
    }

    [DockerFact]
    public async Task a_cancelled_step_is_killed_and_removed_and_reports_cancellation()
    {
        using var cancellation = new CancellationTokenSource();
        var log = new RecordingStepLog();
        var step = TestSteps.One(Sleeper.Replace("timeout: 2s", "timeout: 10m", StringComparison.Ordinal));
        var context = TestSteps.Context(step, log, cancellationToken: cancellation.Token);

        var execution = Executor.ExecuteAsync(context);
        await log.WhenWrittenAsync("ready");
        Assert.Equal(2, (await ContainersOfRunAsync(context.RunId)).Count);
        await cancellation.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => execution);
        Assert.Empty(await ContainersOfRunAsync(context.RunId));
    }

    [DockerFact]
    public async Task the_reaper_removes_this_workers_leftovers_and_nothing_else()
    {
        var leftover = await CreateSleeperAsync(new()
        {
            [ContainerLabels.Managed] = "true",
            [ContainerLabels.Worker] = WorkerId,
            [ContainerLabels.WorkerInstance] = "an-earlier-process",
        });
        var current = await CreateSleeperAsync(new()
        {
            [ContainerLabels.Managed] = "true",
            [ContainerLabels.Worker] = WorkerId,
            [ContainerLabels.WorkerInstance] = Engine.InstanceId,
        });
        var otherWorker = await CreateSleeperAsync(new()
        {
            [ContainerLabels.Managed] = "true",
            [ContainerLabels.Worker] = WorkerId + "-other",
        });
        var unlabelled = await CreateSleeperAsync(new() { ["test.owner"] = WorkerId });
        try
        {
            await DockerTestEngine.Reaper(Engine).StartAsync(CancellationToken.None);

            Assert.False(await ExistsAsync(leftover));
            Assert.True(await ExistsAsync(current));
            Assert.True(await ExistsAsync(otherWorker));
            Assert.True(await ExistsAsync(unlabelled));
        }
        finally
        {
            foreach (var id in new[] { current, otherWorker, unlabelled })
            {
                await Docker.Containers.RemoveContainerAsync(id, new ContainerRemoveParameters { Force = true });
            }
        }
    }

    [DockerFact]
    public async Task a_redelivered_step_removes_the_container_its_earlier_attempt_left_running()
    {
        var step = TestSteps.One("""
            pipelines:
              p:
                steps:
                  - { name: redelivered, image: "${IMAGE}", command: "true" }
            """);
        var log = new RecordingStepLog();
        var context = TestSteps.Context(step, log, attempt: 2);
        await CreateSleeperAsync(new()
        {
            [ContainerLabels.Managed] = "true",
            [ContainerLabels.Run] = context.RunId.ToString(),
            [ContainerLabels.Step] = "redelivered",
            [ContainerLabels.Attempt] = "1",
            [ContainerLabels.Worker] = "a-dead-worker",
        });

        await Executor.ExecuteAsync(context);

        Assert.Contains(log.Lines, l => l.Stream == "system" && l.Text.EndsWith("left by attempt 1 on worker a-dead-worker", StringComparison.Ordinal));
        Assert.Empty(await ContainersOfRunAsync(context.RunId));
    }

    [DockerFact]
    public async Task removing_a_cancelled_runs_containers_spares_other_runs()
    {
        var run = Guid.NewGuid();
        await CreateSleeperAsync(new() { [ContainerLabels.Managed] = "true", [ContainerLabels.Run] = run.ToString(), [ContainerLabels.Worker] = WorkerId });
        var otherRun = await CreateSleeperAsync(new() { [ContainerLabels.Managed] = "true", [ContainerLabels.Run] = Guid.NewGuid().ToString(), [ContainerLabels.Worker] = WorkerId });

        var removed = await DockerTestEngine.Reaper(Engine).RemoveRunContainersAsync(run);

        Assert.Equal(1, removed);
        Assert.Empty(await ContainersOfRunAsync(run));
        Assert.True(await ExistsAsync(otherRun));
        await Docker.Containers.RemoveContainerAsync(otherRun, new ContainerRemoveParameters { Force = true });
    }

    private async Task<string> CreateSleeperAsync(Dictionary<string, string> labels)
    {
        var created = await Docker.Containers.CreateContainerAsync(new CreateContainerParameters
        {
            Image = DockerTestEngine.TestImage,
            Cmd = ["sleep", "600"],
            Labels = labels,
            HostConfig = new HostConfig { NetworkMode = "none" },
        });
        await Docker.Containers.StartContainerAsync(created.ID, new ContainerStartParameters());
        return created.ID;
    }

    private async Task<bool> ExistsAsync(string id)
    {
        var found = await Docker.Containers.ListContainersAsync(new ContainersListParameters
        {
            All = true,
            Filters = new Dictionary<string, IDictionary<string, bool>> { ["id"] = new Dictionary<string, bool> { [id] = true } },
        });
        return found.Count > 0;
    }
}
