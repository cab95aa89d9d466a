using System.Buffers.Text;
using System.Globalization;
using System.Text;
using Microsoft.EntityFrameworkCore;
using Pipelines.Core.Persistence;

namespace Pipelines.Core.Runs;

/// <summary>Which runs a listing returns; every condition given must hold.</summary>
public sealed record RunFilter
{
    public string? Pipeline { get; init; }

    /// <summary>Any of these states; empty for every state.</summary>
    public IReadOnlyList<RunState> States { get; init; } = [];

    /// <summary>Created at or after.</summary>
    public DateTimeOffset? From { get; init; }

    /// <summary>Created before.</summary>
    public DateTimeOffset? To { get; init; }

    /// <summary><c>pipeline/name</c> of the schedule that started the runs.</summary>
    public string? Schedule { get; init; }
}

/// <summary>One page of runs, newest first; <see cref="NextCursor"/> is null on the last page.</summary>
public sealed record RunPage(IReadOnlyList<RunRecord> Runs, string? NextCursor);

/// <summary>A run with its steps (in <see cref="RunRecord.Steps"/>) and every attempt of every step.</summary>
public sealed record RunDetails(RunRecord Run, IReadOnlyList<StepAttemptRecord> Attempts);

/// <summary>Percentiles of run durations (start to finish), by the nearest-rank method.</summary>
public sealed record DurationStatistics(int Count, TimeSpan Mean, TimeSpan P50, TimeSpan P90, TimeSpan P99, TimeSpan Max);

/// <summary>
/// Runs of one pipeline in a time range: how many are in each state, and how long they took —
/// <see cref="Durations"/> over the latest <see cref="RunQueries.DurationSample"/> finished runs in
/// the range, null when none finished.
/// </summary>
public sealed record PipelineStatistics(string Pipeline, int Total, IReadOnlyDictionary<RunState, int> Counts, DurationStatistics? Durations);

/// <summary>A cursor that this store did not hand out, or that was altered.</summary>
public sealed class InvalidCursorException(string message) : ArgumentException(message);

/// <summary>
/// The reads of runs that the API and the CLI share: listing with filters and keyset paging,
/// one run with its steps and attempts, statistics per pipeline, and a step attempt's log.
/// Listing pages by (created time, id), newest first, so a page is stable while new runs arrive.
/// </summary>
public sealed class RunQueries(RunStore store)
{
    /// <summary>Finished runs per pipeline whose durations the statistics' percentiles are computed over.</summary>
    public const int DurationSample = 10_000;

    public async Task<RunPage> ListAsync(RunFilter filter, int limit, string? cursor, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(filter);
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        var after = cursor is null ? ((DateTimeOffset CreatedAt, Guid Id)?)null : DecodeCursor(cursor);
        var runs = await store.ReadAsync(context =>
        {
            var query = Filtered(context.Runs, filter);
            if (after is var (createdAt, id))
            {
                query = query.Where(r => r.CreatedAt < createdAt || (r.CreatedAt == createdAt && r.Id.CompareTo(id) < 0));
            }
            return query.OrderByDescending(r => r.CreatedAt).ThenByDescending(r => r.Id).Take(limit + 1).ToListAsync(cancellationToken);
        });
        var next = runs.Count > limit ? EncodeCursor(runs[limit - 1]) : null;
        return new RunPage(runs.Count > limit ? runs[..limit] : runs, next);
    }

    /// <summary>The run without its steps; null when there is no such run.</summary>
    public Task<RunRecord?> FindAsync(Guid runId, CancellationToken cancellationToken = default) =>
        store.ReadAsync(c => c.Runs.SingleOrDefaultAsync(r => r.Id == runId, cancellationToken));

    /// <returns>Null when there is no such run.</returns>
    public async Task<RunDetails?> GetAsync(Guid runId, CancellationToken cancellationToken = default)
    {
        var run = await store.ReadAsync(c => c.Runs.Include(r => r.Steps).SingleOrDefaultAsync(r => r.Id == runId, cancellationToken));
        if (run is null)
        {
            return null;
        }
        var attempts = await store.ReadAsync(c => c.Attempts.Where(a => a.RunId == runId)
            .OrderBy(a => a.Step).ThenBy(a => a.Number).ToListAsync(cancellationToken));
        return new RunDetails(run, attempts);
    }

    /// <summary>Statistics of runs created in [<paramref name="from"/>, <paramref name="to"/>), per pipeline, ordered by pipeline.</summary>
    public async Task<IReadOnlyList<PipelineStatistics>> StatisticsAsync(
        string? pipeline, DateTimeOffset? from, DateTimeOffset? to, CancellationToken cancellationToken = default)
    {
        var filter = new RunFilter { Pipeline = pipeline, From = from, To = to };
        var counts = await store.ReadAsync(c => Filtered(c.Runs, filter)
            .GroupBy(r => new { r.Pipeline, r.State })
            .Select(g => new { g.Key.Pipeline, g.Key.State, Count = g.Count() })
            .ToListAsync(cancellationToken));
        var statistics = new List<PipelineStatistics>();
        foreach (var group in counts.GroupBy(c => c.Pipeline).OrderBy(g => g.Key, StringComparer.Ordinal))
        {
            var byState = Enum.GetValues<RunState>().ToDictionary(s => s, s => group.Where(c => c.State == s).Sum(c => c.Count));
            var durations = await DurationsAsync(filter with { Pipeline = group.Key }, cancellationToken);
            statistics.Add(new PipelineStatistics(group.Key, byState.Values.Sum(), byState, durations));
        }
        return statistics;
    }

    /// <returns>Null when the step has no such attempt.</returns>
    public Task<StepAttemptRecord?> GetAttemptAsync(Guid runId, string step, int attempt, CancellationToken cancellationToken = default) =>
        store.ReadAsync(c => c.Attempts.SingleOrDefaultAsync(a => a.RunId == runId && a.Step == step && a.Number == attempt, cancellationToken));

    /// <summary>Up to <paramref name="limit"/> log lines of a step attempt whose id is above <paramref name="afterId"/>, oldest first.</summary>
    public Task<List<StepLogRecord>> LogAsync(Guid runId, string step, int attempt, long afterId, int limit, CancellationToken cancellationToken = default) =>
        store.ReadAsync(c => Page(c.Logs.Where(l => l.RunId == runId && l.Step == step && l.Attempt == attempt), afterId, limit)
            .ToListAsync(cancellationToken));

    /// <summary>Up to <paramref name="limit"/> log lines of every step and attempt of a run whose id is above <paramref name="afterId"/>, oldest first.</summary>
    public Task<List<StepLogRecord>> RunLogAsync(Guid runId, long afterId, int limit, CancellationToken cancellationToken = default) =>
        store.ReadAsync(c => Page(c.Logs.Where(l => l.RunId == runId), afterId, limit).ToListAsync(cancellationToken));

    private static IQueryable<StepLogRecord> Page(IQueryable<StepLogRecord> lines, long afterId, int limit) =>
        lines.Where(l => l.Id > afterId).OrderBy(l => l.Id).Take(limit);

    private async Task<DurationStatistics?> DurationsAsync(RunFilter filter, CancellationToken cancellationToken)
    {
        // Differences of timestamps are taken here, not in SQL: SQLite stores them as encoded numbers.
        var times = await store.ReadAsync(c => Filtered(c.Runs, filter)
            .Where(r => r.StartedAt != null && r.FinishedAt != null)
            .OrderByDescending(r => r.CreatedAt)
            .Take(DurationSample)
            .Select(r => new { r.StartedAt, r.FinishedAt })
            .ToListAsync(cancellationToken));
        if (times.Count == 0)
        {
            return null;
        }
        var sorted = times.Select(t => t.FinishedAt!.Value - t.StartedAt!.Value).Order().ToArray();
        TimeSpan Percentile(int p) => sorted[Math.Max(0, (int)Math.Ceiling(p / 100.0 * sorted.Length) - 1)];
        var mean = TimeSpan.FromTicks((long)sorted.Average(d => (double)d.Ticks));
        return new DurationStatistics(sorted.Length, mean, Percentile(50), Percentile(90), Percentile(99), sorted[^1]);
    }

    private static IQueryable<RunRecord> Filtered(IQueryable<RunRecord> runs, RunFilter filter)
    {
        if (filter.Pipeline is { } pipeline)
        {
            runs = runs.Where(r => r.Pipeline == pipeline);
        }
        if (filter.States.Count > 0)
        {
            var states = filter.States.ToList();
            runs = runs.Where(r => states.Contains(r.State));
        }
        // Stored times are UTC; SQLite compares their encoded form, which includes the offset.
        if (filter.From?.ToUniversalTime() is { } from)
        {
            runs = runs.Where(r => r.CreatedAt >= from);
        }
        if (filter.To?.ToUniversalTime() is { } to)
        {
            runs = runs.Where(r => r.CreatedAt < to);
        }
        if (filter.Schedule is { } schedule)
        {
            runs = runs.Where(r => r.Schedule == schedule);
        }
        return runs;
    }

    private static string EncodeCursor(RunRecord last) =>
        Base64Url.EncodeToString(Encoding.UTF8.GetBytes(string.Create(CultureInfo.InvariantCulture, $"{last.CreatedAt.UtcTicks}.{last.Id:N}")));

    private static (DateTimeOffset CreatedAt, Guid Id) DecodeCursor(string cursor)
    {
        try
        {
            var text = Encoding.UTF8.GetString(Base64Url.DecodeFromChars(cursor));
            var dot = text.IndexOf('.', StringComparison.Ordinal);
            if (dot > 0
                && long.TryParse(text.AsSpan(0, dot), NumberStyles.None, CultureInfo.InvariantCulture, out var ticks)
                && ticks <= DateTimeOffset.MaxValue.UtcTicks
                && Guid.TryParseExact(text.AsSpan(dot + 1), "N", out var id))
            {
                return (new DateTimeOffset(ticks, TimeSpan.Zero), id);
            }
        }
        catch (FormatException)
        {
        }
        throw new InvalidCursorException("the cursor is not one a previous page returned; start again without it");
    }
}
