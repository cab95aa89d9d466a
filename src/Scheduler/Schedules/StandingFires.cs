using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Pipelines.Core.Persistence;
using Pipelines.Scheduler.Hosting;
using Quartz;

namespace Pipelines.Scheduler.Schedules;

/// <summary>
/// Whether a fire recorded ahead of its time (<see cref="FireAheadJobStore"/>) still stands at that time:
/// its trigger was not paused or deleted meanwhile. The fires due at one time are answered together, by
/// one query at that time: asked of Quartz one by one, a burst of 167 fires took 20-90 ms to hear back
/// (bench/README.md), and every run of the burst started that much late.
/// </summary>
/// <remarks>
/// The query reads Quartz's trigger table directly (default <c>qrtz_</c> prefix), as Quartz's own
/// <c>GetTriggerState</c> would, on the run store's connection to the same database.
/// </remarks>
internal sealed class StandingFires(RunStore store, TimeProvider clock, IOptions<SchedulerOptions> options)
{
    /// <summary>Quartz's trigger states in which a trigger no longer fires (<c>GetTriggerState</c> reports them as Paused or None).</summary>
    private static readonly string[] Withdrawn = ["PAUSED", "PAUSED_BLOCKED", "DELETED"];

    /// <summary>Trigger keys per query: well under the parameter limits of PostgreSQL and SQLite.</summary>
    private const int KeysPerQuery = 500;

    private readonly Lock _gate = new();
    private readonly Dictionary<DateTimeOffset, Round> _rounds = [];

    /// <summary>Waits until <paramref name="due"/>, then answers whether <paramref name="trigger"/> still fires then.</summary>
    public async Task<bool> StandsAtAsync(TriggerKey trigger, DateTimeOffset due, CancellationToken cancellationToken)
    {
        Round? round;
        var opened = false;
        lock (_gate)
        {
            if (!_rounds.TryGetValue(due, out round))
            {
                _rounds[due] = round = new Round();
                opened = true;
            }
            round.Triggers.Add(trigger);
        }
        if (opened)
        {
            _ = Task.Run(() => AnswerAsync(due, round), CancellationToken.None);
        }
        var standing = await round.Standing.Task.WaitAsync(cancellationToken);
        return standing.Contains(trigger);
    }

    private async Task AnswerAsync(DateTimeOffset due, Round round)
    {
        try
        {
            // A timer counts whole milliseconds and may end a fraction of one early: a run must never start before its time.
            while (due - clock.GetUtcNow() is { Ticks: > 0 } early)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(Math.Ceiling(early.TotalMilliseconds)), clock);
            }
            TriggerKey[] triggers;
            lock (_gate)
            {
                // A fire that asks after this point opens a round of its own, answered at once.
                _rounds.Remove(due);
                triggers = [.. round.Triggers];
            }
            round.Standing.SetResult(await ReadStandingAsync(triggers));
        }
        catch (Exception exception)
        {
            round.Standing.SetException(exception);
        }
    }

    private async Task<HashSet<TriggerKey>> ReadStandingAsync(TriggerKey[] triggers)
    {
        var standing = new HashSet<TriggerKey>();
        foreach (var chunk in triggers.Chunk(KeysPerQuery))
        {
            // Names and groups are matched separately, then pairs in memory: two lists bind as parameters
            // on every provider, and schedules have one group.
            var names = chunk.Select(t => t.Name).Distinct().ToList();
            var groups = chunk.Select(t => t.Group).Distinct().ToList();
            var namePlaceholders = string.Join(", ", names.Select((_, i) => $"{{{i + 1}}}"));
            var groupPlaceholders = string.Join(", ", groups.Select((_, i) => $"{{{names.Count + i + 1}}}"));
            var sql = $$"""
                SELECT trigger_name AS "Name", trigger_group AS "Group", trigger_state AS "State" FROM qrtz_triggers
                WHERE sched_name = {0} AND trigger_name IN ({{namePlaceholders}}) AND trigger_group IN ({{groupPlaceholders}})
                """;
            object[] arguments = [options.Value.InstanceName, .. names, .. groups];
            var rows = await store.ReadAsync(c => c.Database.SqlQueryRaw<TriggerRow>(sql, arguments).ToListAsync());
            var asked = chunk.ToHashSet();
            standing.UnionWith(rows
                .Where(row => !Withdrawn.Contains(row.State))
                .Select(row => new TriggerKey(row.Name, row.Group))
                .Where(asked.Contains));
        }
        return standing;
    }

    private sealed class Round
    {
        public HashSet<TriggerKey> Triggers { get; } = [];

        public TaskCompletionSource<HashSet<TriggerKey>> Standing { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    private sealed record TriggerRow(string Name, string Group, string State);
}
