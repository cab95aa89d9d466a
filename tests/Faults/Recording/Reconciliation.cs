using Microsoft.EntityFrameworkCore;
using Pipelines.Core.Persistence;
using Pipelines.Core.Runs;

namespace Pipelines.Faults.Recording;

/// <summary>
/// The calls a row made, the run store and the side-effect ledger, set against each other after the
/// row drained. Definitions (docs/reliability.md):
/// <list type="bullet">
/// <item><b>accepted</b>: calls that returned a run, plus indeterminate calls whose idempotency key is in the store.</item>
/// <item><b>lost</b>: accepted runs that are not terminal when the drain ends.</item>
/// <item><b>raw re-executions</b>: ledger executions beyond the first of each step of a run.</item>
/// <item><b>duplicate effects</b>: executions that are not a distinct, stored attempt: the same attempt
/// executed twice, an execution with no attempt row, or a second successful attempt of one step.</item>
/// <item><b>recovered</b>: accepted runs that succeeded although a step of theirs was lost, handed back or retried.</item>
/// </list>
/// </summary>
internal sealed record Reconciliation
{
    public int Calls { get; init; }
    public int Ok { get; init; }
    public int Refused { get; init; }
    public int Indeterminate { get; init; }
    /// <summary>Indeterminate calls whose run was stored after all (and so was accepted).</summary>
    public int IndeterminateStored { get; init; }
    public int Accepted { get; init; }
    public int Lost { get; init; }
    public int Succeeded { get; init; }
    public int FailedRuns { get; init; }
    public int Executions { get; init; }
    public int RawReexecutions { get; init; }
    public int DuplicateEffects { get; init; }
    /// <summary>Succeeded steps of accepted runs whose successful attempt never executed a handler.</summary>
    public int MissingEffects { get; init; }
    public int Recovered { get; init; }
    public IReadOnlyDictionary<string, int> AttemptErrors { get; init; } = new Dictionary<string, int>();
    public IReadOnlyList<TimeSpan> Latencies { get; init; } = [];
    public IReadOnlyList<string> Examples { get; init; } = [];

    public TimeSpan? P50 => Percentile(0.50);

    public TimeSpan? P99 => Percentile(0.99);

    public TimeSpan? Percentile(double q)
    {
        if (Latencies.Count == 0)
        {
            return null;
        }
        var sorted = Latencies.Order().ToList();
        return sorted[Math.Clamp((int)Math.Ceiling(q * sorted.Count) - 1, 0, sorted.Count - 1)];
    }

    public static async Task<Reconciliation> ComputeAsync(RunStore store, CallLog calls, Ledger ledger, bool ledgered = true)
    {
        var all = calls.Calls;
        var late = await StoredLateAsync(store, calls);
        var accepted = await AcceptedAsync(store, calls);
        return await ComputeAsync(store, accepted, ledger, ledgered) with
        {
            Calls = all.Count,
            Ok = all.Count(c => c.Outcome == CallOutcome.Ok),
            Refused = all.Count(c => c.Outcome == CallOutcome.Failed),
            Indeterminate = all.Count(c => c.Outcome == CallOutcome.Indeterminate),
            IndeterminateStored = late.Count,
        };
    }

    /// <summary>The runs the calls got accepted: those returned, and those indeterminate calls stored under their idempotency key.</summary>
    public static async Task<IReadOnlyCollection<Guid>> AcceptedAsync(RunStore store, CallLog calls) =>
        [.. calls.Calls.Where(c => c.RunId is not null).Select(c => c.RunId!.Value).Concat(await StoredLateAsync(store, calls)).Distinct()];

    private static async Task<List<Guid>> StoredLateAsync(RunStore store, CallLog calls)
    {
        var keys = calls.Calls.Where(c => c.Outcome == CallOutcome.Indeterminate).Select(c => c.IdempotencyKey).ToList();
        return keys.Count == 0 ? [] : await store.ReadAsync(c => c.Runs.Where(r => r.IdempotencyKey != null && keys.Contains(r.IdempotencyKey)).Select(r => r.Id).ToListAsync());
    }

    /// <summary>
    /// Reconciles the given accepted runs (e.g. the runs schedules started) against the store and the ledger.
    /// <paramref name="ledgered"/> is false for container steps, which write no ledger: then no effect can be missing.
    /// </summary>
    public static async Task<Reconciliation> ComputeAsync(RunStore store, IReadOnlyCollection<Guid> accepted, Ledger ledger, bool ledgered = true)
    {
        var ids = accepted.ToList();
        var runs = await store.ReadAsync(c => c.Runs.Where(r => ids.Contains(r.Id))
            .Select(r => new { r.Id, r.State, r.CreatedAt, r.FinishedAt, r.FailedStep, r.Error }).ToListAsync());
        var steps = await store.ReadAsync(c => c.Steps.Where(s => ids.Contains(s.RunId))
            .Select(s => new { s.RunId, s.Name, s.Chain, s.Position, s.State, s.Attempts, s.Reused }).ToListAsync());
        var chains = await store.ReadAsync(c => c.Chains.Where(ch => ids.Contains(ch.RunId))
            .Select(ch => new { ch.RunId, ch.Index, ch.State, ch.RemainingParents }).ToListAsync());
        var attempts = await store.ReadAsync(c => c.Attempts.Where(a => ids.Contains(a.RunId))
            .Select(a => new { a.RunId, a.Step, a.Number, a.State, a.ErrorKind }).ToListAsync());

        var examples = new List<string>();
        var acceptedSet = accepted.ToHashSet();
        var executions = ledger.Executions.Where(e => acceptedSet.Contains(e.Run)).ToList();
        var stored = attempts.Select(a => (a.RunId, a.Step, a.Number)).ToHashSet();
        var repeated = executions.GroupBy(e => e).Where(g => g.Count() > 1).ToList();
        var unstored = executions.Where(e => !stored.Contains((e.Run, e.Step, e.Attempt))).Distinct().ToList();
        var doubleSuccess = attempts.Where(a => a.State == StepState.Succeeded).GroupBy(a => (a.RunId, a.Step)).Where(g => g.Count() > 1).ToList();
        examples.AddRange(repeated.Take(3).Select(g => $"run {g.Key.Run} step {g.Key.Step} attempt {g.Key.Attempt} executed {g.Count()} times"));
        examples.AddRange(unstored.Take(3).Select(e => $"run {e.Run} step {e.Step} attempt {e.Attempt} executed but not stored as an attempt"));
        examples.AddRange(doubleSuccess.Take(3).Select(g => $"run {g.Key.RunId} step {g.Key.Step} succeeded in {g.Count()} attempts"));

        var executed = executions.Select(e => (e.Run, e.Step, e.Attempt)).ToHashSet();
        var missing = steps.Where(s => ledgered && s.State == StepState.Succeeded && !s.Reused && !executed.Contains((s.RunId, s.Name, s.Attempts))).ToList();
        examples.AddRange(missing.Take(3).Select(s => $"run {s.RunId} step {s.Name} succeeded in attempt {s.Attempts} with no execution in the ledger"));

        var lost = runs.Where(r => !r.State.IsTerminal()).ToList();
        var missingRuns = accepted.Count - runs.Count;
        examples.AddRange(lost.Take(5).Select(r => $"run {r.Id} still {r.State}: steps "
            + string.Join(", ", steps.Where(s => s.RunId == r.Id).OrderBy(s => s.Chain).ThenBy(s => s.Position).Select(s => $"{s.Name}={s.State}/{s.Attempts}"))
            + "; chains " + string.Join(", ", chains.Where(ch => ch.RunId == r.Id).OrderBy(ch => ch.Index).Select(ch => $"{ch.Index}={ch.State}/{ch.RemainingParents}"))));
        examples.AddRange(runs.Where(r => r.State.IsTerminal() && r.State != RunState.Succeeded).Take(3)
            .Select(r => $"run {r.Id} {r.State} at step {r.FailedStep ?? "-"}: {r.Error}"));
        var troubled = attempts.Where(a => a.Number > 1 || a.ErrorKind is "worker-lost" or "handed-back").Select(a => a.RunId).ToHashSet();

        return new Reconciliation
        {
            Accepted = accepted.Count,
            Lost = lost.Count + missingRuns,
            Succeeded = runs.Count(r => r.State == RunState.Succeeded),
            FailedRuns = runs.Count(r => r.State.IsTerminal() && r.State != RunState.Succeeded),
            Executions = executions.Count,
            RawReexecutions = executions.Count - executions.Select(e => (e.Run, e.Step)).Distinct().Count(),
            DuplicateEffects = repeated.Sum(g => g.Count() - 1) + unstored.Count + doubleSuccess.Sum(g => g.Count() - 1),
            MissingEffects = missing.Count,
            Recovered = runs.Count(r => r.State == RunState.Succeeded && troubled.Contains(r.Id)),
            AttemptErrors = attempts.Where(a => a.ErrorKind is not null).GroupBy(a => a.ErrorKind!).ToDictionary(g => g.Key, g => g.Count()),
            Latencies = [.. runs.Where(r => r.FinishedAt is not null).Select(r => r.FinishedAt!.Value - r.CreatedAt)],
            Examples = examples,
        };
    }

    /// <summary>Waits until every accepted run is terminal, or <paramref name="timeout"/> passes; returns how long the drain took.</summary>
    public static async Task<TimeSpan> DrainAsync(RunStore store, Func<Task<IReadOnlyCollection<Guid>>> accepted, TimeSpan timeout)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (clock.Elapsed < timeout)
        {
            var ids = (await accepted()).ToList();
            var open = await store.ReadAsync(c => c.Runs.CountAsync(r => ids.Contains(r.Id) && !TerminalStates.Contains(r.State)));
            if (open == 0 && await store.ReadAsync(c => c.Runs.CountAsync(r => ids.Contains(r.Id))) == ids.Count)
            {
                break;
            }
            await Task.Delay(TimeSpan.FromMilliseconds(500));
        }
        return clock.Elapsed;
    }

    private static readonly RunState[] TerminalStates = [.. Enum.GetValues<RunState>().Where(s => s.IsTerminal())];
}
