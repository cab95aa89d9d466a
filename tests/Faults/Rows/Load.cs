using System.Diagnostics;
using System.Text.Json.Nodes;
using Pipelines.Core.Coordination;
using Pipelines.Faults.Recording;

namespace Pipelines.Faults.Rows;

/// <summary>Steady load: starts runs at a fixed rate through <see cref="RunLauncher"/>, each call recorded.</summary>
internal static class Load
{
    /// <summary>
    /// Starts <paramref name="count"/> runs (or runs until <paramref name="stop"/> is cancelled), <paramref name="perSecond"/>
    /// a second, at most 64 calls in flight. Each call may take <paramref name="callTimeout"/>; one that throws or times out is indeterminate.
    /// </summary>
    public static async Task RunAsync(
        CallLog calls, Func<string, CancellationToken, Task<Guid>> start, int count, double perSecond,
        TimeSpan callTimeout, CancellationToken stop, Func<Exception, bool>? refused = null)
    {
        using var inFlight = new SemaphoreSlim(64);
        var pending = new List<Task>();
        var clock = Stopwatch.StartNew();
        for (var i = 0; i < count && !stop.IsCancellationRequested; i++)
        {
            var due = TimeSpan.FromSeconds(i / perSecond);
            if (due > clock.Elapsed)
            {
                try
                {
                    await Task.Delay(due - clock.Elapsed, stop);
                }
                catch (OperationCanceledException)
                {
                    break;
                }
            }
            await inFlight.WaitAsync(CancellationToken.None);
            pending.Add(Task.Run(async () =>
            {
                try
                {
                    await calls.RecordAsync(async key =>
                    {
                        using var timeout = new CancellationTokenSource(callTimeout);
                        return await start(key, timeout.Token);
                    }, refused);
                }
                finally
                {
                    inFlight.Release();
                }
            }, CancellationToken.None));
        }
        await Task.WhenAll(pending);
    }

    /// <summary>A start through the launcher, as the API does it: the run is stored, then StartRun is sent.</summary>
    public static Func<string, CancellationToken, Task<Guid>> Launcher(RunLauncher launcher, string pipeline, Func<JsonObject?> payload) =>
        async (key, cancellationToken) => (await launcher.StartAsync(new RunRequest { Pipeline = pipeline, Payload = payload(), IdempotencyKey = key }, cancellationToken)).RunId;
}
