using System.Threading.Channels;

namespace Pipelines.Core.Persistence;

/// <summary>
/// Commits many small units of work in one transaction. Workers write a step's claim, lease
/// renewals and outcome as such units: when steps run concurrently their writes share commits
/// (a commit is what a database pays most for), and when a worker is quiet a unit commits at once,
/// alone, so batching adds no latency. If a batch fails, each of its units is retried in a
/// transaction of its own, so one unit's error never fails another.
/// </summary>
public sealed class GroupCommitWriter : IAsyncDisposable
{
    private const int MaxBatch = 64;

    private readonly RunStore _store;
    private readonly Channel<Unit> _units = Channel.CreateUnbounded<Unit>();
    private readonly Task[] _committers;

    public GroupCommitWriter(RunStore store)
    {
        ArgumentNullException.ThrowIfNull(store);
        _store = store;
        // SQLite has one writer anyway; PostgreSQL overlaps one batch's commit with the next batch.
        var committers = store.Options.Provider == RunStoreProvider.Sqlite ? 1 : 2;
        _committers = Enumerable.Range(0, committers).Select(_ => Task.Run(CommitLoopAsync)).ToArray();
    }

    /// <summary>Runs <paramref name="work"/> in a transaction shared with other units; completes after the commit.</summary>
    public async Task<T> WriteAsync<T>(Func<RunStoreContext, Task<T>> work, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(work);
        var unit = new Unit<T>(work);
        ObjectDisposedException.ThrowIf(!_units.Writer.TryWrite(unit), this);
        return await unit.Result.WaitAsync(cancellationToken);
    }

    public Task WriteAsync(Func<RunStoreContext, Task> work, CancellationToken cancellationToken) =>
        WriteAsync(async context =>
        {
            await work(context);
            return true;
        }, cancellationToken);

    private async Task CommitLoopAsync()
    {
        var batch = new List<Unit>(MaxBatch);
        while (await _units.Reader.WaitToReadAsync())
        {
            while (batch.Count < MaxBatch && _units.Reader.TryRead(out var unit))
            {
                batch.Add(unit);
            }
            if (batch.Count == 0)
            {
                continue;
            }
            try
            {
                await _store.WriteAsync(async context =>
                {
                    foreach (var unit in batch)
                    {
                        await unit.RunAsync(context);
                        await context.SaveChangesAsync();
                    }
                }, CancellationToken.None);
                batch.ForEach(u => u.Commit());
            }
            catch (Exception) when (batch.Count > 1)
            {
                foreach (var unit in batch)
                {
                    await CommitAloneAsync(unit);
                }
            }
            catch (Exception exception)
            {
                batch[0].Fail(exception);
            }
            batch.Clear();
        }
    }

    private async Task CommitAloneAsync(Unit unit)
    {
        try
        {
            await _store.WriteAsync(unit.RunAsync, CancellationToken.None);
            unit.Commit();
        }
        catch (Exception exception)
        {
            unit.Fail(exception);
        }
    }

    public async ValueTask DisposeAsync()
    {
        _units.Writer.TryComplete();
        await Task.WhenAll(_committers);
    }

    private abstract class Unit
    {
        public abstract Task RunAsync(RunStoreContext context);

        public abstract void Commit();

        public abstract void Fail(Exception exception);
    }

    private sealed class Unit<T>(Func<RunStoreContext, Task<T>> work) : Unit
    {
        private readonly TaskCompletionSource<T> _result = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private T? _value;

        public Task<T> Result => _result.Task;

        public override async Task RunAsync(RunStoreContext context) => _value = await work(context);

        public override void Commit() => _result.TrySetResult(_value!);

        public override void Fail(Exception exception) => _result.TrySetException(exception);
    }
}
