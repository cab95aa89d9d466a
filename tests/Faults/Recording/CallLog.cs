using System.Collections.Concurrent;
using System.Diagnostics;

namespace Pipelines.Faults.Recording;

/// <summary>What a client saw of one call, Jepsen's way: it knows it worked, it knows it did not, or it cannot tell.</summary>
internal enum CallOutcome
{
    /// <summary>The run was accepted: the call returned its id.</summary>
    Ok,
    /// <summary>The call was refused, and nothing was stored (a 4xx or 503 answer, a validation error).</summary>
    Failed,
    /// <summary>The call threw or timed out after it may have stored the run; reconciliation looks the run up by its idempotency key.</summary>
    Indeterminate,
}

internal sealed record Call(int Index, string IdempotencyKey, DateTimeOffset Started, TimeSpan Latency, CallOutcome Outcome, Guid? RunId, string? Error);

/// <summary>Every call a row made to start a run, with its outcome and latency.</summary>
internal sealed class CallLog
{
    private readonly ConcurrentBag<Call> _calls = [];
    private int _next;

    public IReadOnlyList<Call> Calls => [.. _calls.OrderBy(c => c.Index)];

    /// <summary>
    /// Runs <paramref name="start"/> with a fresh idempotency key and records its outcome:
    /// <see cref="CallOutcome.Failed"/> when <paramref name="refused"/> says the exception proves
    /// nothing was stored, <see cref="CallOutcome.Indeterminate"/> for any other exception.
    /// </summary>
    public async Task<Call> RecordAsync(Func<string, Task<Guid>> start, Func<Exception, bool>? refused = null)
    {
        var index = Interlocked.Increment(ref _next);
        var key = $"faults-{index}-{Guid.NewGuid():N}";
        var started = DateTimeOffset.UtcNow;
        var clock = Stopwatch.StartNew();
        Call call;
        try
        {
            var runId = await start(key);
            call = new Call(index, key, started, clock.Elapsed, CallOutcome.Ok, runId, null);
        }
        catch (Exception exception)
        {
            var outcome = refused?.Invoke(exception) == true ? CallOutcome.Failed : CallOutcome.Indeterminate;
            var error = exception is Engine.ApiRefusedException ? exception.Message : $"{exception.GetType().Name}: {exception.Message}";
            call = new Call(index, key, started, clock.Elapsed, outcome, null, error);
        }
        _calls.Add(call);
        return call;
    }
}
