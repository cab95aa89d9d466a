using Microsoft.EntityFrameworkCore;
using Pipelines.Core.Persistence;
using Pipelines.Core.Runs;

namespace Pipelines.Core.Coordination;

/// <summary>A run ready to store: its row, its planned steps and its chains.</summary>
internal sealed record NewRun(RunRecord Run, IReadOnlyList<StepRecord> Steps, IReadOnlyList<ChainRecord> Chains)
{
    public static async Task InsertAsync(RunStore store, RunStoreContext context, IReadOnlyCollection<NewRun> runs)
    {
        await store.InsertAsync(context, runs.Select(run => run.Run).ToList(), CancellationToken.None);
        await store.InsertAsync(context, runs.SelectMany(run => run.Steps).ToList(), CancellationToken.None);
        await store.InsertAsync(context, runs.SelectMany(run => run.Chains).ToList(), CancellationToken.None);
    }
}

/// <summary>
/// Stores new runs, idempotently on the run id and the idempotency key, and sends the starts of those
/// whose callers ask for it. Runs accepted while the previous
/// ones are being stored go in together, in one transaction: a schedule's burst of fires (167 at one
/// second in the scheduler benchmark) pays for a few commits instead of one each, which on a small
/// machine is most of the time its last run waits. A lone run is stored at once.
/// </summary>
/// <remarks>
/// A batch that one of its runs fails (a key seen before) is stored again one run at a time, so one run's
/// duplicate or error never reaches another; a batch the database fails (unavailable for longer than the
/// store waits) fails all its runs. A run whose caller gave up before its batch began is left out.
/// The starts a batch's callers asked for are sent together, in one go (<c>RunLauncher</c>: a few
/// <see cref="Contracts.StartRuns"/> messages), and its callers go on together once they are sent (on
/// RabbitMQ: confirmed by the broker), so that the last starts of a burst do not wait behind what the
/// others do next: a schedule's fire then writes its completion to Quartz's tables, several statements
/// each, and 167 of those took the CPU the client needed for the remaining confirms (bench/README.md).
/// If the starts could not be sent, every caller of the batch gets that exception; the runs are stored,
/// and the coordinator's sweep starts them later. The send is given up only once every caller has.
/// </remarks>
internal sealed class NewRunWriter(RunStore store, Func<IReadOnlyList<RunRecord>, CancellationToken, Task> sendStarts)
{
    /// <summary>Runs per transaction at most.</summary>
    private const int MaxBatch = 500;

    private readonly Lock _gate = new();
    private List<Waiting> _waiting = [];
    private bool _storing;

    /// <summary>
    /// Stores <paramref name="run"/> and, if <paramref name="start"/>, sends its start once stored; or
    /// returns the run stored before under its id or idempotency key, which is not started again.
    /// </summary>
    public async Task<LaunchedRun> StoreAsync(NewRun run, bool start, CancellationToken cancellationToken)
    {
        var waiting = new Waiting(run, start, cancellationToken);
        bool beginStoring;
        lock (_gate)
        {
            _waiting.Add(waiting);
            beginStoring = !_storing;
            _storing = true;
        }
        if (beginStoring)
        {
            // The writer works for every caller: it does not carry this one's trace or other ambient state.
            using (ExecutionContext.SuppressFlow())
            {
                _ = Task.Run(StoreWaitingAsync, CancellationToken.None);
            }
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
        catch (Exception exception) when (RunStore.IsUniqueViolation(exception))
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

    /// <summary>Stores <paramref name="runs"/> in one transaction, sends the starts asked for, and tells each caller its run was created.</summary>
    private async Task WriteAsync(List<Waiting> runs)
    {
        await store.WriteAsync(context => NewRun.InsertAsync(store, context, runs.ConvertAll(waiting => waiting.Run)), CancellationToken.None);
        var starting = runs.FindAll(waiting => waiting.Start);
        var sent = starting.Count == 0 ? Task.CompletedTask : SendStartsAsync(starting);
        foreach (var waiting in runs)
        {
            _ = ReportCreatedAsync(waiting, waiting.Start ? sent : Task.CompletedTask);
        }
    }

    private async Task SendStartsAsync(List<Waiting> starting)
    {
        using var everyoneGaveUp = new CancellationTokenSource();
        var stillWaiting = starting.Count;
        var registrations = starting.ConvertAll(waiting => waiting.Cancellation.Register(() =>
        {
            if (Interlocked.Decrement(ref stillWaiting) == 0)
            {
                everyoneGaveUp.Cancel();
            }
        }));
        try
        {
            await sendStarts(starting.ConvertAll(waiting => waiting.Run.Run), everyoneGaveUp.Token);
        }
        finally
        {
            registrations.ForEach(registration => registration.Dispose());
        }
    }

    private static async Task ReportCreatedAsync(Waiting waiting, Task sent)
    {
        try
        {
            await sent;
            waiting.Result.TrySetResult(new LaunchedRun(waiting.Run.Run.Id, Created: true, waiting.Run.Run.State));
        }
        catch (Exception exception)
        {
            waiting.Result.TrySetException(exception);
        }
    }

    private sealed record Waiting(NewRun Run, bool Start, CancellationToken Cancellation)
    {
        public TaskCompletionSource<LaunchedRun> Result { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
