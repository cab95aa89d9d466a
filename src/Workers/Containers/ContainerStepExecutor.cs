using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json.Nodes;
using Docker.DotNet;
using Docker.DotNet.Models;
using Pipelines.Core.Definitions;
using Pipelines.Core.Execution;

namespace Pipelines.Workers.Containers;

/// <summary>
/// Runs one attempt of a step with <c>image:</c> or <c>build:</c> in a throwaway sandboxed
/// container: policy check, image pull or build, sidecars, create, inputs in, start, logs, wait,
/// output out, remove. The container contract is documented in docs/containers.md.
/// </summary>
public sealed class ContainerStepExecutor : IStepExecutor, IDisposable
{
    private readonly ContainerEngine _engine;
    private readonly ContainerImages _images;
    private readonly TimeProvider _time;
    private readonly SemaphoreSlim _slots;
    private readonly NetworkPool? _networkPool;

    /// <param name="engine">The worker's Docker engine.</param>
    /// <param name="time">The clock of timeouts and log timestamps.</param>
    /// <param name="networkPool">Pre-started network namespaces for steps with no network; none when null.</param>
    public ContainerStepExecutor(ContainerEngine engine, TimeProvider time, NetworkPool? networkPool = null)
    {
        ArgumentNullException.ThrowIfNull(engine);
        _engine = engine;
        _time = time;
        _networkPool = networkPool;
        _images = new ContainerImages(engine);
        Policy = new SandboxPolicy(engine.Options);
        _slots = new SemaphoreSlim(engine.Options.MaxConcurrentContainers);
    }

    public SandboxPolicy Policy { get; }

    private ContainerOptions Options => _engine.Options;

    public bool CanExecute(StepDefinition definition) =>
        definition is { Handler: null } && (definition.Image is not null || definition.Build is not null);

    /// <summary>A container step has no compensation: it stays succeeded when its run fails.</summary>
    public Task<bool> CompensateAsync(StepContext context, JsonNode? output) => Task.FromResult(false);

    public async Task<JsonNode?> ExecuteAsync(StepContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        if (!CanExecute(context.Definition))
        {
            throw new InvalidOperationException($"step '{context.Step}' is not a container step");
        }
        Policy.Enforce(context.Definition);

        var secrets = new StepSecrets(context.Secrets, context.Step);
        var log = new StepLogSink(context.Log, secrets, Options.LogCapBytes, Options.ErrorLogLines, _time);
        var timeout = context.Definition.Timeout?.Value;
        using var deadline = timeout is { } limit ? new CancellationTokenSource(limit, _time) : new CancellationTokenSource();
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken, deadline.Token);
        try
        {
            return await RunAsync(context, secrets, log, stop.Token);
        }
        catch (Exception e) when (e is not StepFailedException && deadline.IsCancellationRequested && !context.CancellationToken.IsCancellationRequested)
        {
            log.System($"timed out after {new Duration(timeout!.Value)}; the step's containers were killed and removed");
            throw new StepFailedException($"step '{context.Step}' timed out after {new Duration(timeout.Value)}; its containers were killed and removed", "timeout");
        }
        catch (Exception e) when (e is not OperationCanceledException && context.CancellationToken.IsCancellationRequested)
        {
            throw new OperationCanceledException($"step '{context.Step}' was cancelled; its containers were killed and removed", e, context.CancellationToken);
        }
        catch (DockerApiException e)
        {
            var body = string.IsNullOrWhiteSpace(e.ResponseBody) ? e.StatusCode.ToString() : e.ResponseBody.Trim();
            throw new StepFailedException(secrets.Mask($"step '{context.Step}': the Docker engine answered {(int)e.StatusCode}: {body}"), "docker", e)
            {
                // A request the engine refuses (a missing bind source, an unknown runtime) fails the same way again.
                Retryable = e.StatusCode is >= HttpStatusCode.InternalServerError or HttpStatusCode.Conflict,
            };
        }
        catch (Exception e) when (e is HttpRequestException or SocketException or IOException or TimeoutException)
        {
            throw new StepFailedException($"step '{context.Step}': cannot reach the Docker engine at {_engine.Endpoint}: {e.Message}", "docker", e);
        }
    }

    private async Task<JsonNode?> RunAsync(StepContext context, StepSecrets secrets, StepLogSink log, CancellationToken cancellationToken)
    {
        using var running = _networkPool?.StepRunning();
        var step = context.Definition;
        var image = await _images.PrepareAsync(step, context.Step, secrets, log, cancellationToken);
        context.Details["image"] = image.Reference;
        context.Details["image_digest"] = image.Digest;
        context.Details["image_id"] = image.Inspect.ID;
        context.Details["runtime"] = Options.Runtime;
        var sidecarImages = new List<ResolvedImage>();
        foreach (var sidecar in step.Sidecars)
        {
            sidecarImages.Add(await _images.PrepareAsync(sidecar, context.Step, secrets, log, cancellationToken));
        }

        var eventJson = StepExchange.EventJson(context);
        var inputsJson = StepExchange.InputsJson(context);
        // Built (and their secrets resolved) before anything starts, so a missing secret leaves nothing to clean up.
        var stepParameters = Parameters(context, step, image, StepExchange.Environment(context, eventJson, inputsJson), secrets);
        var sidecarParameters = step.Sidecars
            .Select((sidecar, i) => Parameters(context, sidecar, sidecarImages[i], StepExchange.SidecarEnvironment(), secrets))
            .ToList();

        await _slots.WaitAsync(cancellationToken);
        // A step alone on no network joins a namespace the pool started ahead, when one is ready.
        string? namespaceHolder = null;
        try
        {
            if (_networkPool is not null && step.Sidecars.Count == 0 && step.Network is null or "none")
            {
                namespaceHolder = await _networkPool.TakeAsync(cancellationToken);
            }
            await using var containers = new StepContainers(_engine, context, log, _time);
            await containers.RemoveLeftoversAsync(cancellationToken);

            // The first sidecar owns the network namespace that the step and the other sidecars join,
            // so they reach each other on localhost, as containers of a Kubernetes pod do.
            string? namespaceOwner = null;
            for (var i = 0; i < step.Sidecars.Count; i++)
            {
                var sidecar = step.Sidecars[i];
                sidecarParameters[i].HostConfig.NetworkMode = NetworkMode(step, namespaceOwner);
                var id = await containers.CreateAsync(sidecarParameters[i], cancellationToken);
                await containers.AttachLogAsync(id, $"[{sidecar.Name}] ", isStep: false, cancellationToken);
                await containers.StartAsync(id, cancellationToken);
                await WaitUntilHealthyAsync(context, sidecar, id, cancellationToken);
                namespaceOwner ??= id;
            }

            stepParameters.HostConfig.NetworkMode = NetworkMode(step, namespaceOwner ?? namespaceHolder);
            var stepId = await containers.CreateAsync(stepParameters, cancellationToken);
            using (var inputs = await StepExchange.ArchiveAsync(eventJson, inputsJson, Options.UserIds, _time.GetUtcNow(), cancellationToken))
            {
                await _engine.Client.Containers.ExtractArchiveToContainerAsync(stepId,
                    new ContainerPathStatParameters { Path = SandboxPolicy.ExchangeDirectory }, inputs, cancellationToken);
            }
            var pump = await containers.AttachLogAsync(stepId, "", isStep: true, cancellationToken);
            log.System(Describe(stepParameters, image, namespaceOwner is not null ? "shared with its sidecars"
                : namespaceHolder is not null ? "none (a namespace started ahead)" : stepParameters.HostConfig.NetworkMode));
            await containers.StartAsync(stepId, cancellationToken);
            var name = stepParameters.Name;
            ContainerExecutionLog.Started(context.Logger, context.RunId, context.Pipeline, context.Step, context.Attempt, name, image.Reference, Options.Runtime);

            var exit = await _engine.Client.Containers.WaitContainerAsync(stepId, cancellationToken);
            await StepContainers.DrainAsync(pump, _time);
            context.Details["exit_code"] = exit.StatusCode.ToString(CultureInfo.InvariantCulture);
            ContainerExecutionLog.Exited(context.Logger, context.RunId, context.Pipeline, context.Step, context.Attempt, name, exit.StatusCode);

            if (exit.StatusCode != 0)
            {
                var killedForMemory = (await _engine.Client.Containers.InspectContainerAsync(stepId, cancellationToken)).State.OOMKilled;
                throw Failure(context, step, exit.StatusCode, killedForMemory, log.Tail);
            }
            return await StepExchange.ReadOutputAsync(_engine.Client, stepId, context.Step, Options.MaxOutputBytes, cancellationToken);
        }
        finally
        {
            // After the step's containers are removed: none of them is in the namespace any more.
            if (namespaceHolder is not null)
            {
                _networkPool!.Release(namespaceHolder);
            }
            _slots.Release();
        }
    }

    /// <summary>
    /// How a container of the step is created; its network mode is set once the namespace owner is
    /// known. <paramref name="baseEnvironment"/> comes first, the definition's <c>env</c> overrides it.
    /// </summary>
    private CreateContainerParameters Parameters(StepContext context, ContainerDefinition container, ResolvedImage image,
        IEnumerable<KeyValuePair<string, string>> baseEnvironment, StepSecrets secrets)
    {
        var where = container is SidecarDefinition sidecar ? $"sidecar '{sidecar.Name}' " : "";
        var imageWorkdir = image.Inspect.Config?.WorkingDir;
        // One entry per name: a process sees the first of duplicates, so an override must replace, not append.
        var environment = new Dictionary<string, string>(baseEnvironment, StringComparer.Ordinal);
        foreach (var (name, value) in container.Env)
        {
            environment[name] = secrets.Substitute(value, $"{where}env.{name}");
        }
        return new CreateContainerParameters
        {
            Name = StepContainers.NameFor(context, (container as SidecarDefinition)?.Name),
            // The id, not the tag: the container runs exactly the image whose digest was recorded.
            Image = image.Inspect.ID,
            Cmd = container.Command?.Arguments.Select((a, i) => secrets.Substitute(a, $"{where}command[{i}]")).ToList(),
            Entrypoint = container.Entrypoint?.Arguments.Select((a, i) => secrets.Substitute(a, $"{where}entrypoint[{i}]")).ToList(),
            Env = environment.Select(e => $"{e.Key}={e.Value}").ToList(),
            WorkingDir = container.Workdir ?? (imageWorkdir is null or "" or "/" ? SandboxPolicy.WorkDirectory : null),
            User = Options.User,
            Labels = ContainerLabels.For(context, _engine, container),
            HostConfig = Policy.HostConfigFor(container, "none", withExchangeVolume: container is StepDefinition),
        };
    }

    private static string Describe(CreateContainerParameters parameters, ResolvedImage image, string network)
    {
        var host = parameters.HostConfig;
        return $"running {image.Reference} ({image.Digest}) as user {parameters.User}, runtime {host.Runtime}, network {network}, " +
            $"memory {new ByteSize(host.Memory)}, cpus {(host.NanoCPUs / 1e9).ToString(CultureInfo.InvariantCulture)}, pids {host.PidsLimit}, read-only root";
    }

    private static string NetworkMode(StepDefinition step, string? namespaceOwner) =>
        namespaceOwner is not null ? $"container:{namespaceOwner}" : step.Network ?? "none";

    /// <summary>A sidecar whose image declares a health check must report healthy before the step starts.</summary>
    private async Task WaitUntilHealthyAsync(StepContext context, SidecarDefinition sidecar, string id, CancellationToken cancellationToken)
    {
        while (true)
        {
            var state = (await _engine.Client.Containers.InspectContainerAsync(id, cancellationToken)).State;
            if (!state.Running)
            {
                throw new StepFailedException($"step '{context.Step}': sidecar '{sidecar.Name}' exited with code {state.ExitCode} before the step started", "sidecar");
            }
            switch (state.Health?.Status)
            {
                case null or "" or "healthy":
                    return;
                case "unhealthy":
                    throw new StepFailedException($"step '{context.Step}': sidecar '{sidecar.Name}' reported unhealthy before the step started", "sidecar");
            }
            await Task.Delay(TimeSpan.FromMilliseconds(200), _time, cancellationToken);
        }
    }

    private StepFailedException Failure(StepContext context, StepDefinition step, long exitCode, bool killedForMemory, IReadOnlyList<string> lastLines)
    {
        const int KilledBySigKill = 137;
        var tail = lastLines.Count == 0 ? " It wrote no output." : $"\nlast {lastLines.Count} log lines:\n{string.Join('\n', lastLines)}";
        var limit = step.Resources?.Memory?.ToString() ?? Options.DefaultMemory;
        if (killedForMemory)
        {
            return new StepFailedException(
                $"step '{context.Step}' ran out of memory: the kernel killed it at its {limit} limit (exit code {exitCode}); raise resources.memory if it needs more.{tail}",
                "oom");
        }
        // Only the kernel's OOM killer, or the step killing itself, sends SIGKILL inside a sandbox without
        // capabilities; and the engine misses the OOM event of a process killed right after it starts.
        if (exitCode == KilledBySigKill)
        {
            return new StepFailedException(
                $"step '{context.Step}' was killed (exit code 137, SIGKILL), most likely out of memory at its {limit} limit; raise resources.memory if it needs more.{tail}",
                "oom");
        }
        return new StepFailedException($"step '{context.Step}' exited with code {exitCode}.{tail}", "exit-code");
    }

    public void Dispose() => _slots.Dispose();
}
