using System.Buffers;
using System.Text;
using Docker.DotNet;

namespace Pipelines.Workers.Containers;

/// <summary>
/// Copies a container's attached stdout/stderr (a multiplexed stream) into a
/// <see cref="StepLogSink"/> line by line, each line stamped with the time it arrived. It reads to
/// the end even after the sink is full: an attached container blocks when its output is not read.
/// </summary>
internal static class ContainerLogPump
{
    // Docker splits longer lines into 16 KiB pieces anyway; this bounds what one line may hold in memory.
    private const int MaxLineBytes = 64 * 1024;

    /// <summary>
    /// Copies the stream until it ends. <paramref name="prefix"/> goes before every line (<c>[db] </c>
    /// for a sidecar); <paramref name="isStep"/> marks the step's own output, which is remembered for
    /// its error, unlike a sidecar's.
    /// </summary>
    public static async Task PumpAsync(MultiplexedStream stream, StepLogSink sink, string prefix, bool isStep, CancellationToken cancellationToken)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(81920);
        var pending = new Dictionary<MultiplexedStream.TargetStream, ArrayBufferWriter<byte>>();
        try
        {
            while (true)
            {
                var read = await stream.ReadOutputAsync(buffer, 0, buffer.Length, cancellationToken);
                if (read.EOF)
                {
                    break;
                }
                if (!pending.TryGetValue(read.Target, out var line))
                {
                    pending[read.Target] = line = new ArrayBufferWriter<byte>();
                }
                Consume(buffer.AsSpan(0, read.Count), line, StreamName(read.Target), sink, prefix, isStep);
            }
            foreach (var (target, rest) in pending.Where(p => p.Value.WrittenCount > 0))
            {
                Emit(rest.WrittenSpan, StreamName(target), sink, prefix, isStep);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private static void Consume(ReadOnlySpan<byte> chunk, ArrayBufferWriter<byte> line, string stream, StepLogSink sink, string prefix, bool isStep)
    {
        while (!chunk.IsEmpty)
        {
            var newline = chunk.IndexOf((byte)'\n');
            var piece = newline < 0 ? chunk : chunk[..newline];
            var room = MaxLineBytes - line.WrittenCount;
            if (piece.Length > room)
            {
                line.Write(piece[..room]);
                chunk = chunk[room..];
            }
            else
            {
                line.Write(piece);
                if (newline < 0)
                {
                    return;
                }
                chunk = chunk[(newline + 1)..];
            }
            Emit(line.WrittenSpan, stream, sink, prefix, isStep);
            line.Clear();
        }
    }

    private static void Emit(ReadOnlySpan<byte> bytes, string stream, StepLogSink sink, string prefix, bool isStep) =>
        sink.Write(stream, prefix + Encoding.UTF8.GetString(bytes).TrimEnd('\r'), rememberInTail: isStep);

    private static string StreamName(MultiplexedStream.TargetStream target) =>
        target == MultiplexedStream.TargetStream.StandardError ? "stderr" : "stdout";
}
