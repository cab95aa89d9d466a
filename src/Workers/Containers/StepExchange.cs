using System.Formats.Tar;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Docker.DotNet;
using Docker.DotNet.Models;
using Pipelines.Core.Execution;

namespace Pipelines.Workers.Containers;

/// <summary>
/// How data crosses the container boundary. In: the run's payload and the outputs of the steps this
/// one depends on, as files under /pipelines/input and as environment variables. Out: the files the
/// step writes under /pipelines/output — <c>output.json</c> parsed as JSON when present, otherwise
/// an object mapping each file's path to its text, or null when the folder is empty.
/// </summary>
internal static class StepExchange
{
    public const string EventFile = "event.json";
    public const string InputsFile = "inputs.json";
    public const string OutputFile = "output.json";

    // Linux refuses to start a process whose single environment string passes 128 KiB; the files carry any size.
    private const int MaxEnvironmentJson = 64 * 1024;

    /// <summary>The environment every step container gets; the definition's own <c>env</c> may override it.</summary>
    public static Dictionary<string, string> Environment(StepContext context, string eventJson, string inputsJson)
    {
        var environment = SidecarEnvironment();
        environment["PIPELINES_RUN_ID"] = context.RunId.ToString();
        environment["PIPELINES_PIPELINE"] = context.Pipeline;
        environment["PIPELINES_STEP"] = context.Step;
        environment["PIPELINES_ATTEMPT"] = context.Attempt.ToString(CultureInfo.InvariantCulture);
        environment["PIPELINES_INPUT_DIR"] = SandboxPolicy.InputDirectory;
        environment["PIPELINES_OUTPUT_DIR"] = SandboxPolicy.OutputDirectory;
        if (eventJson.Length <= MaxEnvironmentJson)
        {
            environment["PIPELINES_EVENT"] = eventJson;
        }
        if (inputsJson.Length <= MaxEnvironmentJson)
        {
            environment["PIPELINES_INPUTS"] = inputsJson;
        }
        return environment;
    }

    /// <summary>The environment of a sidecar: a writable home, since the root filesystem is read-only.</summary>
    public static Dictionary<string, string> SidecarEnvironment() =>
        new(StringComparer.Ordinal) { ["HOME"] = SandboxPolicy.WorkDirectory };

    public static string EventJson(StepContext context) => context.Event.ToJsonString();

    public static string InputsJson(StepContext context)
    {
        var inputs = new JsonObject();
        foreach (var (step, output) in context.Inputs.OrderBy(i => i.Key, StringComparer.Ordinal))
        {
            inputs[step] = output?.DeepClone();
        }
        return inputs.ToJsonString();
    }

    /// <summary>
    /// A tar for /pipelines: input/ (root-owned, read-only to the step, which has no capabilities to
    /// override that) and an empty output/ owned by the step's user.
    /// </summary>
    public static async Task<MemoryStream> ArchiveAsync(string eventJson, string inputsJson, (int Uid, int Gid) user, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var archive = new MemoryStream();
        await using (var writer = new TarWriter(archive, TarEntryFormat.Pax, leaveOpen: true))
        {
            await writer.WriteEntryAsync(Directory("input/", 0, 0, UnixFileMode.UserRead | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute, now), cancellationToken);
            await writer.WriteEntryAsync(File("input/" + EventFile, eventJson, now), cancellationToken);
            await writer.WriteEntryAsync(File("input/" + InputsFile, inputsJson, now), cancellationToken);
            await writer.WriteEntryAsync(Directory("output/", user.Uid, user.Gid, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute, now), cancellationToken);
        }
        archive.Position = 0;
        return archive;
    }

    private static PaxTarEntry Directory(string name, int uid, int gid, UnixFileMode mode, DateTimeOffset now) =>
        new(TarEntryType.Directory, name) { Uid = uid, Gid = gid, Mode = mode, ModificationTime = now };

    private static PaxTarEntry File(string name, string content, DateTimeOffset now) => new(TarEntryType.RegularFile, name)
    {
        Uid = 0,
        Gid = 0,
        Mode = UnixFileMode.UserRead | UnixFileMode.GroupRead | UnixFileMode.OtherRead,
        ModificationTime = now,
        DataStream = new MemoryStream(Encoding.UTF8.GetBytes(content)),
    };

    /// <summary>Reads /pipelines/output from the stopped container; see the class summary for the shape.</summary>
    public static async Task<JsonNode?> ReadOutputAsync(IDockerClient docker, string containerId, string step, long maxBytes, CancellationToken cancellationToken)
    {
        var response = await docker.Containers.GetArchiveFromContainerAsync(
            containerId, new GetArchiveFromContainerParameters { Path = SandboxPolicy.OutputDirectory }, statOnly: false, cancellationToken);
        var files = new SortedDictionary<string, byte[]>(StringComparer.Ordinal);
        long total = 0;
        // Buffered first: the engine's chunked stream fails when the tar reader reads on past the archive's end.
        using var archive = await BufferAsync(response.Stream, maxBytes + ArchiveOverhead, step, cancellationToken);
        await using (var reader = new TarReader(archive))
        {
            while (await reader.GetNextEntryAsync(copyData: false, cancellationToken) is { } entry)
            {
                if (entry.EntryType is not (TarEntryType.RegularFile or TarEntryType.V7RegularFile) || entry.DataStream is null)
                {
                    continue;
                }
                total += entry.Length;
                if (total > maxBytes)
                {
                    throw TooLarge(step, maxBytes);
                }
                // The archive names entries after the folder asked for: output/count.
                var slash = entry.Name.IndexOf('/', StringComparison.Ordinal);
                var relative = slash < 0 ? entry.Name : entry.Name[(slash + 1)..];
                using var content = new MemoryStream();
                await entry.DataStream.CopyToAsync(content, cancellationToken);
                files[relative] = content.ToArray();
            }
        }
        if (files.TryGetValue(OutputFile, out var json))
        {
            try
            {
                return JsonNode.Parse(json);
            }
            catch (JsonException e)
            {
                throw new StepFailedException(
                    $"step '{step}' wrote {SandboxPolicy.OutputDirectory}/{OutputFile} that is not valid JSON: {e.Message}", "output", e)
                { Retryable = false };
            }
        }
        if (files.Count == 0)
        {
            return null;
        }
        var output = new JsonObject();
        foreach (var (name, content) in files)
        {
            output[name] = FileValue(content);
        }
        return output;
    }

    // Room for the tar headers around the output's bytes.
    private const long ArchiveOverhead = 1 << 20;

    private static async Task<MemoryStream> BufferAsync(Stream source, long limit, string step, CancellationToken cancellationToken)
    {
        await using (source)
        {
            var buffer = new MemoryStream();
            var chunk = new byte[81920];
            while (true)
            {
                int read;
                try
                {
                    read = await source.ReadAsync(chunk, cancellationToken);
                }
                catch (EndOfStreamException)
                {
                    break;
                }
                if (read == 0)
                {
                    break;
                }
                if (buffer.Length + read > limit)
                {
                    throw TooLarge(step, limit - ArchiveOverhead);
                }
                buffer.Write(chunk, 0, read);
            }
            buffer.Position = 0;
            return buffer;
        }
    }

    private static StepFailedException TooLarge(string step, long maxBytes) => new(
        $"step '{step}' wrote more than {maxBytes.ToString(CultureInfo.InvariantCulture)} bytes under {SandboxPolicy.OutputDirectory} (setting MaxOutputBytes); outputs travel with the run, so keep them small and put large data in a volume",
        "output")
    { Retryable = false };

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>Text with its trailing newlines trimmed (as a shell's <c>$(...)</c> does), or <c>{"base64": ...}</c> for binary content.</summary>
    private static JsonNode FileValue(byte[] content)
    {
        try
        {
            return JsonValue.Create(StrictUtf8.GetString(content).TrimEnd('\n', '\r'));
        }
        catch (DecoderFallbackException)
        {
            return new JsonObject { ["base64"] = Convert.ToBase64String(content) };
        }
    }
}
