using Microsoft.EntityFrameworkCore;
using Pipelines.Core.Persistence;
using Pipelines.Core.Runs;

namespace Pipelines.Core.Coordination;

/// <summary>A run ready to store: its row, its planned steps and its chains.</summary>
internal sealed record NewRun(RunRecord Run, IReadOnlyList<StepRecord> Steps, IReadOnlyList<ChainRecord> Chains)
{
    public void AddTo(RunStoreContext context)
    {
        context.Runs.Add(Run);
        context.Steps.AddRange(Steps);
        context.Chains.AddRange(Chains);
    }
}

/// <summary>
/// Stores new runs, idempotently on the run id and the idempotency key. Runs accepted while the previous
/// ones are being stored go in together, in one transaction: a schedule's burst of fires (167 at one
/// second in the scheduler benchmark) pays for a few commits instead of one each, which on a small
/// machine is most of the time its last run waits. A lone run is stored at once.
/// </summary>
/// <remarks>
/// A batch that one of its runs fails (a key seen before) is stored again one run at a time, so one run's
/// duplicate or error never reaches another; a batch the database fails (unavailable for longer than the
/// store waits) fails all its runs. A run whose caller gave up before its batch began is left out.
/// </remarks>
internal sealed class NewRunWriter(RunStore store)
{
    /// <summary>Runs per transaction at most.</summary>
    private const int MaxBatch = 500;

    private readonly Lock _gate = new();
    private List<Waiting> _waiting = [];
    private bool _storing;

    /// <summary>Stores <paramref name="run"/>, or returns the run stored before under its id or idempotency key.</summary>
    public async Task<LaunchedRun> StoreAsync(NewRun run, CancellationToken cancellationToken)
    {
        var waiting = new Waiting(run, cancellationToken);
        bool start;
        lock (_gate)
        {
            _waiting.Add(waiting);
            start = !_storing;
            _storing = true;
        }
        if (start)
        {
            _ = Task.Run(StoreWaitingAsync, CancellationToken.None);
        }
        return await waiting.Result.Task.WaitAsync(cancellationToken);
    }

    /// <summary>Stores what is waiting, batch after batch, until nothing is.</summary>
    private async Task StoreWaitingAsync()
    {
        while (true)
        {
            List<Waiting> batch;
            lock (_gate)
            {
                if (_waiting.Count == 0)
                {
                    _storing = false;
                    return;
                }
                batch = _waiting.Count <= MaxBatch ? _waiting : _waiting[..MaxBatch];
                _waiting = _waiting.Count <= MaxBatch ? [] : _waiting[MaxBatch..];
            }
            // Their callers have given up and were told so: storing their runs now would start them unasked.
            batch.RemoveAll(waiting => waiting.Cancellation.IsCancellationRequested);
            if (batch.Count == 0)
            {
                continue;
            }
            if (batch.Count == 1 || !await TryStoreTogetherAsync(batch))
            {
                await Task.WhenAll(batch.Select(StoreAloneAsync));
            }
        }
    }

    /// <summary>False when one of the runs, not the database, failed the batch: each is then stored alone.</summary>
    private async Task<bool> TryStoreTogetherAsync(List<Waiting> batch)
    {
        try
        {
            await WriteAsync(batch);
        }
        catch (Exception exception) when (RunStore.IsTransient(exception))
        {
            // The store waited the outage out and gave up: alone, each run would wait as long again.
            batch.ForEach(waiting => waiting.Result.TrySetException(exception));
        }
        catch (Exception)
        {
            return false;
        }
        return true;
    }

    private async Task StoreAloneAsync(Waiting waiting)
    {
        var run = waiting.Run.Run;
        try
        {
            await WriteAsync([waiting]);
        }
        catch (DbUpdateException exception) when (RunStore.IsUniqueViolation(exception))
        {
            try
            {
                var existing = await store.ReadAsync(context => context.Runs
                    .Where(r => r.Id == run.Id || (run.IdempotencyKey != null && r.IdempotencyKey == run.IdempotencyKey))
                    .Select(r => new { r.Id, r.State })
                    .FirstAsync());
                waiting.Result.TrySetResult(new LaunchedRun(existing.Id, Created: false, existing.State));
            }
            catch (Exception readFailed)
            {
                waiting.Result.TrySetException(readFailed);
            }
        }
        catch (Exception exception)
        {
            waiting.Result.TrySetException(exception);
        }
    }

    /// <summary>Stores <paramref name="runs"/> in one transaction and tells each caller its run was created.</summary>
    private async Task WriteAsync(List<Waiting> runs)
    {
        await store.WriteAsync(context =>
        {
            runs.ForEach(waiting => waiting.Run.AddTo(context));
            return Task.CompletedTask;
        }, CancellationToken.None);
        runs.ForEach(waiting => waiting.Result.TrySetResult(new LaunchedRun(waiting.Run.Run.Id, Created: true, waiting.Run.Run.State)));
    }

    private sealed record Waiting(NewRun Run, CancellationToken Cancellation)
    {
        public TaskCompletionSource<LaunchedRun> Result { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
