using System.Threading.Channels;
using Microsoft.Extensions.Hosting;
using Pipelines.Core.Execution;
using Pipelines.Core.Persistence;
using Pipelines.Core.Runs;

namespace Pipelines.Workers.Steps;

/// <summary>
/// Persists step log lines in batches (one transaction for many lines of many steps), so a chatty
/// step does not cost a database commit per line. Lines are readable in the run store within a
/// fraction of a second.
/// </summary>
public sealed class StepLogWriter(RunStore store) : BackgroundService
{
    private readonly Channel<StepLogRecord> _lines = Channel.CreateUnbounded<StepLogRecord>(new UnboundedChannelOptions { SingleReader = true });

    /// <summary>The log of one attempt: at most <paramref name="maxLines"/> lines, each with <paramref name="secrets"/> masked.</summary>
    public IStepLog For(Guid runId, string step, int attempt, int maxLines, RevealedSecrets secrets) =>
        new AttemptLog(this, runId, step, attempt, maxLines, secrets, store.Clock);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var batch = new List<StepLogRecord>();
        try
        {
            while (await _lines.Reader.WaitToReadAsync(stoppingToken))
            {
                await FlushAsync(batch, CancellationToken.None);
                await Task.Delay(TimeSpan.FromMilliseconds(100), stoppingToken);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
        await FlushAsync(batch, CancellationToken.None);
    }

    /// <summary>Writes every line written so far; steps call it before they report their outcome.</summary>
    public Task FlushAsync() => FlushAsync([], CancellationToken.None);

    private readonly SemaphoreSlim _flushing = new(1, 1);

    private async Task FlushAsync(List<StepLogRecord> batch, CancellationToken cancellationToken)
    {
        await _flushing.WaitAsync(cancellationToken);
        try
        {
            while (_lines.Reader.TryRead(out var line))
            {
                batch.Add(line);
                if (batch.Count == 1000)
                {
                    await WriteAsync(batch, cancellationToken);
                }
            }
            await WriteAsync(batch, cancellationToken);
        }
        finally
        {
            _flushing.Release();
        }
    }

    private async Task WriteAsync(List<StepLogRecord> batch, CancellationToken cancellationToken)
    {
        if (batch.Count == 0)
        {
            return;
        }
        var lines = batch.ToArray();
        batch.Clear();
        await store.WriteAsync(context =>
        {
            context.Logs.AddRange(lines);
            return Task.CompletedTask;
        }, cancellationToken);
    }

    public override void Dispose()
    {
        _flushing.Dispose();
        base.Dispose();
    }

    private sealed class AttemptLog(StepLogWriter writer, Guid runId, string step, int attempt, int maxLines, RevealedSecrets secrets, TimeProvider clock) : IStepLog
    {
        private int _written;

        public void Write(string stream, string line, DateTimeOffset? timestamp = null)
        {
            var count = Interlocked.Increment(ref _written);
            if (count > maxLines + 1)
            {
                return;
            }
            var text = count == maxLines + 1 ? $"[log truncated: only the first {maxLines} lines of an attempt are kept]" : secrets.Mask(line);
            writer._lines.Writer.TryWrite(new StepLogRecord
            {
                RunId = runId,
                Step = step,
                Attempt = attempt,
                Timestamp = timestamp ?? clock.GetUtcNow(),
                Stream = count == maxLines + 1 ? "system" : stream,
                Text = text,
            });
        }
    }
}
