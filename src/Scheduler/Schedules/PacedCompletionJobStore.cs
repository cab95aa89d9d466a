using Quartz.Extensibility;
using Quartz.Impl;

namespace Pipelines.Scheduler.Schedules;

/// <summary>
/// Quartz's store, except that it completes at most <see cref="MaxConcurrentCompletions"/> fires at once.
/// Completing a fire deletes its row in <c>qrtz_fired_triggers</c>, after its run has started.
/// </summary>
/// <remarks>
/// Left to Quartz, every fire of a burst completes at the same moment, each in a transaction of its own
/// on a connection of its own: a burst of 167 had 90 completions open together, grew Quartz's pool to
/// 100 connections, and opened them on the database's CPU while the burst's runs were being handed over
/// (bench/README.md). Each completion is a few statements on one row, so four at a time finish a burst of
/// 167 well inside the second. A completion that waits its turn holds the fire's Quartz thread, as one
/// waiting for a pooled connection did before.
/// </remarks>
internal sealed class PacedCompletionJobStore(IJobStore store) : DelegatingJobStore(store), IDisposable
{
    internal const int MaxConcurrentCompletions = 4;

    private readonly SemaphoreSlim _completing = new(MaxConcurrentCompletions);

    // Quartz's scheduler completes every fire through this member (TriggeredJobComplete is the older entry).
    public override async ValueTask FiringComplete(TriggeredJobCompleteContext context, CancellationToken cancellationToken = default)
    {
        await _completing.WaitAsync(cancellationToken);
        try
        {
            await base.FiringComplete(context, cancellationToken);
        }
        finally
        {
            _completing.Release();
        }
    }

    public void Dispose() => _completing.Dispose();
}
