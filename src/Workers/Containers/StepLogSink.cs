using System.Globalization;
using System.Text;
using Pipelines.Core.Execution;

namespace Pipelines.Workers.Containers;

/// <summary>
/// The log of one container step attempt: stdout/stderr of its containers and the worker's own
/// notes (pull, build, truncation) on the <c>system</c> stream. Secrets are masked, the bytes kept
/// are capped (a marker states the cap), and the step's last lines are remembered for its error.
/// </summary>
internal sealed class StepLogSink(IStepLog log, StepSecrets secrets, long capBytes, int tailLines, TimeProvider time)
{
    public const string SystemStream = "system";

    private readonly Lock _gate = new();
    private readonly Queue<string> _tail = new();
    private long _written;

    /// <summary>True once the cap was reached; later lines were dropped.</summary>
    public bool Truncated { get; private set; }

    /// <summary>The last lines of the step's own output (not its sidecars'), secrets masked.</summary>
    public IReadOnlyList<string> Tail
    {
        get
        {
            lock (_gate)
            {
                return [.. _tail];
            }
        }
    }

    public void System(string line) => Write(SystemStream, line, rememberInTail: false, counted: false);

    /// <summary>Keeps one line, stamped now, unless the cap is reached; the tail remembers it either way.</summary>
    public void Write(string stream, string line, bool rememberInTail, bool counted = true)
    {
        var timestamp = time.GetUtcNow();
        var masked = secrets.Mask(line);
        lock (_gate)
        {
            if (rememberInTail && tailLines > 0)
            {
                if (_tail.Count == tailLines)
                {
                    _tail.Dequeue();
                }
                _tail.Enqueue(masked);
            }
            if (Truncated)
            {
                return;
            }
            if (counted)
            {
                _written += Encoding.UTF8.GetByteCount(masked) + 1;
                if (_written > capBytes)
                {
                    Truncated = true;
                    log.Write(SystemStream,
                        $"log truncated: this attempt's output passed {capBytes.ToString(CultureInfo.InvariantCulture)} bytes (setting LogCapBytes); later lines are not kept",
                        timestamp);
                    return;
                }
            }
            log.Write(stream, masked, timestamp);
        }
    }
}
