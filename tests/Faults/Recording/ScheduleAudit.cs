using Microsoft.EntityFrameworkCore;
using Pipelines.Core.Persistence;
using Pipelines.Faults.Engine;

namespace Pipelines.Faults.Recording;

/// <summary>
/// Fires expected against runs started, for schedules that fire every <c>period</c> on whole multiples of it.
/// <list type="bullet">
/// <item><b>missed</b>: an expected fire time with no run of that schedule and time.</item>
/// <item><b>covered by the misfire policy</b>: a streak of missed fires of a schedule for which a replica
/// logged a misfire decision (5003 fire once / 5004 skip) due within the streak or the fire just before it:
/// the policy replaced the streak by one run now, or by nothing.</item>
/// <item><b>double runs</b>: two runs of one schedule and fire time (the run store's unique idempotency key
/// should make this impossible); <b>absorbed</b>: fires a replica repeated and the key turned away (5002).</item>
/// </list>
/// </summary>
internal sealed record ScheduleAudit
{
    public int Schedules { get; init; }
    public int Expected { get; init; }
    public int OnTime { get; init; }
    public int Missed { get; init; }
    public int MissedCovered { get; init; }
    public int MissedBeyondPolicy => Missed - MissedCovered;
    public int DoubleRuns { get; init; }
    public int Absorbed { get; init; }
    public int MisfireDecisions { get; init; }
    public IReadOnlyList<TimeSpan> Lateness { get; init; } = [];
    public IReadOnlyList<Guid> Runs { get; init; } = [];
    public IReadOnlyList<string> Examples { get; init; } = [];

    public TimeSpan? LatenessAt(double q) => Lateness.Count == 0 ? null : Lateness.Order().ElementAt(Math.Clamp((int)Math.Ceiling(q * Lateness.Count) - 1, 0, Lateness.Count - 1));

    public static async Task<ScheduleAudit> ComputeAsync(
        RunStore store, string pipeline, int schedules, TimeSpan period, DateTimeOffset from, DateTimeOffset to, IReadOnlyCollection<SchedulerEvent> events)
    {
        var prefix = pipeline + "/";
        var runs = await store.ReadAsync(c => c.Runs.Where(r => r.Schedule != null && r.Schedule.StartsWith(prefix))
            .Select(r => new { r.Id, Schedule = r.Schedule!, r.FireTime, r.CreatedAt }).ToListAsync());
        var slots = new List<DateTimeOffset>();
        var first = new DateTimeOffset(from.UtcTicks - (from.UtcTicks % period.Ticks) + period.Ticks, TimeSpan.Zero);
        for (var t = first; t <= to; t += period)
        {
            slots.Add(t);
        }
        var names = Enumerable.Range(1, schedules).Select(i => $"{pipeline}/s{i:D2}").ToList();
        var examples = new List<string>();
        int onTime = 0, missed = 0, covered = 0;
        var lateness = new List<TimeSpan>();
        foreach (var name in names)
        {
            var fired = runs.Where(r => r.Schedule == name && r.FireTime is not null).ToDictionary(r => r.FireTime!.Value, r => r.CreatedAt);
            var misfires = events.Where(e => e.Schedule == name && e.Id is 5003 or 5004).Select(e => e.Time).ToList();
            var streak = new List<DateTimeOffset>();
            void CloseStreak()
            {
                if (streak.Count == 0)
                {
                    return;
                }
                missed += streak.Count;
                if (misfires.Any(d => d >= streak[0] - period && d <= streak[^1]))
                {
                    covered += streak.Count;
                }
                else if (examples.Count < 6)
                {
                    examples.Add($"{name} missed {streak.Count} fire(s) {streak[0]:HH:mm:ss}-{streak[^1]:HH:mm:ss} UTC with no misfire decision logged");
                }
                streak.Clear();
            }
            foreach (var slot in slots)
            {
                if (fired.TryGetValue(slot, out var created))
                {
                    onTime++;
                    lateness.Add(created - slot);
                    CloseStreak();
                }
                else
                {
                    streak.Add(slot);
                }
            }
            CloseStreak();
        }
        var inWindow = runs.Where(r => r.FireTime is { } t && t >= first && t <= to).ToList();
        var doubles = inWindow.GroupBy(r => (r.Schedule, r.FireTime)).Where(g => g.Count() > 1).ToList();
        examples.AddRange(doubles.Take(3).Select(g => $"{g.Key.Schedule} has {g.Count()} runs for its fire at {g.Key.FireTime:HH:mm:ss}"));
        return new ScheduleAudit
        {
            Schedules = schedules,
            Expected = slots.Count * schedules,
            OnTime = onTime,
            Missed = missed,
            MissedCovered = covered,
            DoubleRuns = doubles.Sum(g => g.Count() - 1),
            Absorbed = events.Count(e => e.Id == 5002 && e.Time >= first && e.Time <= to),
            MisfireDecisions = events.Count(e => e.Id is 5003 or 5004),
            Lateness = lateness,
            Runs = [.. inWindow.Select(r => r.Id)],
            Examples = examples,
        };
    }

    /// <summary>The definition file of the scheduler rows: one pipeline with one handler step and <paramref name="schedules"/> schedules firing every 5 s.</summary>
    public static string Definitions(string pipeline, int schedules) =>
        $"""
        pipelines:
          {pipeline}:
            steps:
              - {"{"} name: tick, handler: demo.echo {"}"}
            schedules:
        {string.Join("\n", Enumerable.Range(1, schedules).Select(i => $"      - {{ name: s{i:D2}, cron: \"*/5 * * * * ?\" }}"))}
        """;
}
