using System.Collections.Concurrent;
using Docker.DotNet;
using Docker.DotNet.Models;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Pipelines.Workers.Containers;

/// <summary>
/// Keeps network namespaces ready for steps that run with no network (<see cref="NetworkPoolOptions"/>).
/// Each namespace is held by a sleeping container in the steps' sandbox, with network <c>none</c>; a
/// step joins it instead of having the engine create one while it starts. A holder serves one step
/// only and is removed after it, in the background. The pool refills only while no container step
/// runs on this worker, so that making namespaces never competes with steps: under sustained load it
/// empties, and steps make their own namespaces as they would without it. Holders carry this
/// worker's labels (role <c>network</c>), so the orphan reaper removes those a crashed process left;
/// stopping the pool removes the rest.
/// </summary>
/// <remarks>
/// Not a pool of created step containers: a container's command, environment and labels are fixed
/// when it is created, and a step's carry its run, so one cannot be made ahead of its step. Creating
/// a container takes about 10 ms; creating its network namespace, about 100 ms.
/// </remarks>
public sealed class NetworkPool : IHostedLifecycleService, IAsyncDisposable, IDisposable
{
    private static readonly TimeSpan RetryAfter = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan EngineTimeout = TimeSpan.FromSeconds(60);
    // A holder whose process exits this soon after its start does not sleep: the image or command is wrong.
    private static readonly TimeSpan SleepCheck = TimeSpan.FromSeconds(1);

    private readonly ContainerEngine _engine;
    private readonly SandboxPolicy _policy;
    private readonly TimeProvider _time;
    private readonly ILogger<NetworkPool> _logger;
    private readonly ConcurrentQueue<string> _ready = new();
    private readonly SemaphoreSlim _missing;
    private readonly ConcurrentDictionary<Task, byte> _removals = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly Lock _gate = new();
    private int _running;
    private TaskCompletionSource _idle = new();
    private Task _filling = Task.CompletedTask;
    private volatile bool _open;
    private bool _disposed;

    public NetworkPool(ContainerEngine engine, TimeProvider time, ILogger<NetworkPool> logger)
    {
        ArgumentNullException.ThrowIfNull(engine);
        _engine = engine;
        _time = time;
        _logger = logger;
        _policy = new SandboxPolicy(engine.Options);
        _missing = new SemaphoreSlim(Options.Size);
        _idle.SetResult();
    }

    private NetworkPoolOptions Options => _engine.Options.NetworkPool;

    /// <summary>Namespaces the pool keeps ready (<see cref="NetworkPoolOptions.Size"/>); 0 when it is off.</summary>
    public int Size => Options.Size;

    /// <summary>Namespaces ready to be taken now.</summary>
    public int Ready => _ready.Count;

    /// <summary>Starts filling the pool in the background, when it is on; the worker's start does not wait for it.</summary>
    public Task StartAsync(CancellationToken cancellationToken)
    {
        if (Options.Size > 0 && !_open && !_stop.IsCancellationRequested)
        {
            _open = true;
            _filling = Task.Run(() => FillAsync(_stop.Token), CancellationToken.None);
        }
        return Task.CompletedTask;
    }

    /// <summary>
    /// The id of a ready holder, now the caller's alone, to join with network mode
    /// <c>container:ID</c>; null when none is ready or the pool is off. Hand it back with
    /// <see cref="Release"/> once the step's containers are removed.
    /// </summary>
    internal async Task<string?> TakeAsync(CancellationToken cancellationToken)
    {
        while (_open && _ready.TryDequeue(out var id))
        {
            ContainerState state;
            try
            {
                state = (await _engine.Client.Containers.InspectContainerAsync(id, cancellationToken)).State;
            }
            catch (Exception e) when (e is DockerApiException or HttpRequestException or IOException)
            {
                // The step meets the same engine next; the pool is not the one to fail it.
                Release(id);
                return null;
            }
            if (state.Running)
            {
                return id;
            }
            ContainerExecutionLog.NamespaceHolderExited(_logger, id, state.ExitCode);
            Release(id);
        }
        return null;
    }

    /// <summary>Counts a container step as running on this worker until the result is disposed: the pool refills only while none runs.</summary>
    internal IDisposable StepRunning()
    {
        lock (_gate)
        {
            if (_running++ == 0)
            {
                _idle = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            }
        }
        return new RunningStep(this);
    }

    private Task Idle
    {
        get
        {
            lock (_gate)
            {
                return _idle.Task;
            }
        }
    }

    /// <summary>Removes a holder in the background; a replacement is made once no step runs.</summary>
    internal void Release(string holderId)
    {
        Remove(holderId);
        if (_open)
        {
            _missing.Release();
        }
    }

    private void Remove(string holderId)
    {
        var removal = RemoveAsync(holderId);
        _removals[removal] = 0;
        _ = removal.ContinueWith(done => _removals.TryRemove(done, out _), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    /// <summary>Stops filling, removes the ready holders and waits for every removal started so far.</summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        _open = false;
        if (!_stop.IsCancellationRequested)
        {
            await _stop.CancelAsync();
        }
        await _filling;
        while (_ready.TryDequeue(out var id))
        {
            Remove(id);
        }
        await Task.WhenAll(_removals.Keys);
    }

    /// <summary>
    /// Waits for the removal of the holders that steps still had when the pool stopped: the worker
    /// drains its steps after the pool (hosted services stop in reverse order), and this runs after
    /// every hosted service has stopped.
    /// </summary>
    public Task StoppedAsync(CancellationToken cancellationToken) => Task.WhenAll(_removals.Keys);

    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    private async Task FillAsync(CancellationToken stop)
    {
        try
        {
            string image;
            try
            {
                image = await PrepareImageAsync(stop);
                await CheckHolderSleepsAsync(image, stop);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                _open = false;
                ContainerExecutionLog.NetworkPoolUnavailable(_logger, Options.Image, e);
                return;
            }
            while (true)
            {
                await _missing.WaitAsync(stop);
                await Idle.WaitAsync(stop);
                try
                {
                    _ready.Enqueue(await StartHolderAsync(image, stop));
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    _missing.Release();
                    ContainerExecutionLog.NamespaceHolderFailed(_logger, e);
                    await Task.Delay(RetryAfter, _time, stop);
                }
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
        }
    }

    /// <summary>The holder image's id, pulled (without credentials) when the engine lacks it.</summary>
    private async Task<string> PrepareImageAsync(CancellationToken cancellationToken)
    {
        try
        {
            return (await _engine.Client.Images.InspectImageAsync(Options.Image, cancellationToken)).ID;
        }
        catch (DockerImageNotFoundException)
        {
            await _engine.Client.Images.CreateImageAsync(new ImagesCreateParameters { FromImage = Options.Image }, new AuthConfig(), new Progress<JSONMessage>(), cancellationToken);
            return (await _engine.Client.Images.InspectImageAsync(Options.Image, cancellationToken)).ID;
        }
    }

    /// <summary>Starts one holder and fails when it exits by itself: a pool of such holders would fail every step that joins one.</summary>
    private async Task CheckHolderSleepsAsync(string image, CancellationToken cancellationToken)
    {
        var id = await StartHolderAsync(image, cancellationToken);
        try
        {
            using var wait = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            wait.CancelAfter(SleepCheck);
            var exit = await _engine.Client.Containers.WaitContainerAsync(id, wait.Token);
            throw new InvalidOperationException(
                $"a holder exited with code {exit.StatusCode} instead of sleeping; set {ContainerOptions.Section}:NetworkPool:Command for image '{Options.Image}'");
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            _ready.Enqueue(id); // still asleep: it is the pool's first holder
            await _missing.WaitAsync(cancellationToken);
        }
        catch
        {
            Remove(id);
            throw;
        }
    }

    private async Task<string> StartHolderAsync(string image, CancellationToken cancellationToken)
    {
        // Not cancelled midway, only bounded: a create the engine completes after its caller gave up
        // would leave a holder no one knows of until the next start of this worker.
        using var timeout = new CancellationTokenSource(EngineTimeout, _time);
        var created = await _engine.Client.Containers.CreateContainerAsync(new CreateContainerParameters
        {
            Name = $"pipelines-network-{Guid.NewGuid():N}",
            Image = image,
            Cmd = Options.Command.Count > 0 ? Options.Command : null,
            User = _engine.Options.User,
            Labels = ContainerLabels.ForNamespaceHolder(_engine),
            HostConfig = _policy.NamespaceHolderHostConfig(),
        }, timeout.Token);
        try
        {
            if (!await _engine.Client.Containers.StartContainerAsync(created.ID, new ContainerStartParameters(), timeout.Token))
            {
                throw new InvalidOperationException($"the Docker engine did not start holder {created.ID}");
            }
            cancellationToken.ThrowIfCancellationRequested();
            return created.ID;
        }
        catch
        {
            Remove(created.ID);
            throw;
        }
    }

    private async Task RemoveAsync(string id)
    {
        using var timeout = new CancellationTokenSource(EngineTimeout, _time);
        try
        {
            await _engine.Client.Containers.RemoveContainerAsync(id, new ContainerRemoveParameters { Force = true }, timeout.Token);
        }
        catch (DockerContainerNotFoundException)
        {
        }
        catch (Exception e) when (e is DockerApiException or HttpRequestException or IOException or OperationCanceledException)
        {
            // The orphan reaper removes it at the next start of this worker.
            ContainerExecutionLog.NamespaceHolderRemoveFailed(_logger, id, e);
        }
    }

    private sealed class RunningStep(NetworkPool pool) : IDisposable
    {
        private int _ended;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _ended, 1) == 0)
            {
                lock (pool._gate)
                {
                    if (--pool._running == 0)
                    {
                        pool._idle.TrySetResult();
                    }
                }
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (!_disposed)
        {
            await StopAsync(CancellationToken.None);
            Dispose();
        }
    }

    /// <summary>Frees the pool's own resources; <see cref="StopAsync"/> (the host calls it) removes its holders.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }
        _disposed = true;
        _stop.Cancel();
        _stop.Dispose();
        _missing.Dispose();
    }
}
