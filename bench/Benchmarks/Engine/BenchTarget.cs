using System.Collections.Concurrent;

namespace Pipelines.Bench.Benchmarks.Engine;

/// <summary>
/// One system measured by the engine group: a way to put one unit of work (a message, a job, a
/// pipeline run) through RabbitMQ and/or PostgreSQL and wait until it is done.
/// </summary>
/// <remarks>
/// The life of a target: <see cref="PrepareAsync"/> creates its scratch virtual host or database
/// and leaves no connection open (so counters read then are its baseline), <see cref="StartAsync"/>
/// starts its clients and workers, <see cref="RunOnceAsync"/> is called many times, concurrently,
/// and <see cref="StopAsync"/> stops everything that talks to the services, so their counters are final.
/// </remarks>
internal abstract class BenchTarget : IAsyncDisposable
{
    /// <summary>How long one run may take before the benchmark gives up on the target.</summary>
    private static readonly TimeSpan RunTimeout = TimeSpan.FromSeconds(60);

    private int _runs;

    /// <summary>Short stable name the report finds the target by, e.g. <c>engine-chain</c>.</summary>
    public abstract string Key { get; }

    /// <summary>Row name in the report, e.g. <c>engine: 5-step chain</c>.</summary>
    public abstract string Name { get; }

    public abstract int StepsPerRun { get; }

    /// <summary>The scratch virtual host whose publish count is this target's broker traffic; null when it uses no broker.</summary>
    public string? VirtualHost { get; protected set; }

    /// <summary>The scratch database whose commits are this target's; null when it uses no database.</summary>
    public string? Database { get; protected set; }

    /// <summary>Runs started so far: the divisor of the per-run counts.</summary>
    public int Runs => _runs;

    /// <summary>Peak working set of the worker process under load, when the target has one of its own.</summary>
    public virtual long? WorkerPeakWorkingSet => null;

    public abstract Task PrepareAsync(CancellationToken cancellationToken);

    public abstract Task StartAsync(CancellationToken cancellationToken);

    /// <summary>Starts one run and returns when it is done, with its timestamps where the target has them in hand.</summary>
    public async Task<RunSample> RunOnceAsync(CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _runs);
        try
        {
            return await RunAsync(cancellationToken).WaitAsync(RunTimeout, cancellationToken);
        }
        catch (TimeoutException)
        {
            throw new TimeoutException($"{Name}: a run did not finish within {RunTimeout.TotalSeconds:0} s");
        }
    }

    protected abstract Task<RunSample> RunAsync(CancellationToken cancellationToken);

    public abstract Task StopAsync(CancellationToken cancellationToken);

    /// <summary>
    /// Start-to-first-step and end-to-end latency of each sample. Targets that record the timestamps
    /// elsewhere (the engine: in its run store) override this and read them after <see cref="StopAsync"/>.
    /// </summary>
    public virtual Task<IReadOnlyList<RunLatency>> LatenciesAsync(IReadOnlyList<RunSample> samples, CancellationToken cancellationToken) =>
        Task.FromResult<IReadOnlyList<RunLatency>>(samples
            .Select(s => new RunLatency(s.FirstStepStarted!.Value - s.Issued, s.Finished!.Value - s.Issued))
            .ToList());

    public abstract ValueTask DisposeAsync();
}

/// <summary>One run: when the caller asked for it and, where known, when its first step started and when it was done.</summary>
internal sealed record RunSample(Guid Id, DateTimeOffset Issued, DateTimeOffset? FirstStepStarted = null, DateTimeOffset? Finished = null);

internal sealed record RunLatency(TimeSpan FirstStep, TimeSpan EndToEnd);

/// <summary>
/// Pairs "run X is done" signals, which arrive on consumer threads, with the callers waiting for
/// them; either may come first (a fast run can finish before its starter has its id).
/// </summary>
internal sealed class Completions<TResult>
{
    private readonly ConcurrentDictionary<Guid, TaskCompletionSource<TResult>> _pending = new();

    public void Complete(Guid id, TResult result) => Entry(id).TrySetResult(result);

    public void Fail(Guid id, Exception error) => Entry(id).TrySetException(error);

    public async Task<TResult> WaitAsync(Guid id, CancellationToken cancellationToken)
    {
        try
        {
            return await Entry(id).Task.WaitAsync(cancellationToken);
        }
        finally
        {
            _pending.TryRemove(id, out _);
        }
    }

    private TaskCompletionSource<TResult> Entry(Guid id) =>
        _pending.GetOrAdd(id, _ => new TaskCompletionSource<TResult>(TaskCreationOptions.RunContinuationsAsynchronously));
}
