using System.Formats.Tar;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Pipelines.Core.Definitions;
using Pipelines.Core.Execution;

namespace Pipelines.Workers.Containers;

/// <summary>
/// The folder of a <c>build:</c> step, with a hash of everything the image is built from (every
/// file's path, mode and content, the Dockerfile name and the build args). The image is tagged with
/// the hash, so an unchanged context is not built again. <c>.dockerignore</c> is not applied.
/// </summary>
internal sealed class BuildContext
{
    private readonly List<string> _entries;

    private BuildContext(string directory, string dockerfile, List<string> entries, string hash)
    {
        Directory = directory;
        Dockerfile = dockerfile;
        _entries = entries;
        Hash = hash;
    }

    public string Directory { get; }

    /// <summary>Path of the Dockerfile within the context, with '/' separators.</summary>
    public string Dockerfile { get; }

    /// <summary>Lower-case hex SHA-256.</summary>
    public string Hash { get; }

    public static BuildContext Scan(string step, BuildDefinition build, string root, long maxBytes)
    {
        var directory = Path.GetFullPath(build.Context, root);
        if (!System.IO.Directory.Exists(directory))
        {
            throw Refused(step, $"build.context '{build.Context}' is not a folder on this worker (looked at {directory})");
        }
        var dockerfile = (build.Dockerfile ?? "Dockerfile").Replace('\\', '/');
        var dockerfilePath = Path.GetFullPath(dockerfile, directory);
        if (!SandboxPolicy.IsSameOrUnder(dockerfilePath, directory) || !File.Exists(dockerfilePath))
        {
            throw Refused(step, $"build.dockerfile '{dockerfile}' is not a file inside the build context {directory}");
        }

        var entries = new List<string>();
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        long total = 0;
        Add(hash, "pipelines-build-context-v1");
        Add(hash, dockerfile);
        foreach (var (name, value) in build.Args.OrderBy(a => a.Key, StringComparer.Ordinal))
        {
            Add(hash, $"arg {name}={value}");
        }
        Walk(directory, "");

        return new BuildContext(directory, dockerfile, entries, Convert.ToHexStringLower(hash.GetHashAndReset()));

        void Walk(string folder, string prefix)
        {
            foreach (var path in System.IO.Directory.EnumerateFileSystemEntries(folder).Order(StringComparer.Ordinal))
            {
                var relative = prefix + Path.GetFileName(path);
                var info = new FileInfo(path);
                entries.Add(relative);
                if (info.LinkTarget is { } target)
                {
                    Add(hash, $"link {relative} {target}");
                }
                else if (info.Attributes.HasFlag(FileAttributes.Directory))
                {
                    Add(hash, $"dir {relative} {Mode(path)}");
                    Walk(path, relative + "/");
                }
                else
                {
                    total += info.Length;
                    if (total > maxBytes)
                    {
                        throw Refused(step, $"build.context {directory} holds more than {maxBytes.ToString(CultureInfo.InvariantCulture)} bytes (setting MaxBuildContextBytes)");
                    }
                    Add(hash, $"file {relative} {Mode(path)} {info.Length.ToString(CultureInfo.InvariantCulture)}");
                    using var content = File.OpenRead(path);
                    var buffer = new byte[81920];
                    int read;
                    while ((read = content.Read(buffer)) > 0)
                    {
                        hash.AppendData(buffer, 0, read);
                    }
                }
            }
        }
    }

    /// <summary>Writes the context as the tar the engine's build API takes, into a temporary file deleted on close.</summary>
    public async Task<Stream> ArchiveAsync(CancellationToken cancellationToken)
    {
        var archive = new FileStream(Path.GetTempFileName(), FileMode.Create, FileAccess.ReadWrite, FileShare.None, 81920,
            FileOptions.DeleteOnClose | FileOptions.Asynchronous);
        try
        {
            await using (var writer = new TarWriter(archive, TarEntryFormat.Pax, leaveOpen: true))
            {
                foreach (var entry in _entries)
                {
                    await writer.WriteEntryAsync(Path.Combine(Directory, entry), entry, cancellationToken);
                }
            }
            archive.Position = 0;
            return archive;
        }
        catch
        {
            await archive.DisposeAsync();
            throw;
        }
    }

    private static string Mode(string path) =>
        OperatingSystem.IsWindows() ? "" : Convert.ToString((int)File.GetUnixFileMode(path), 8);

    private static void Add(IncrementalHash hash, string text)
    {
        hash.AppendData(Encoding.UTF8.GetBytes(text));
        hash.AppendData([0]);
    }

    private static StepFailedException Refused(string step, string reason) =>
        new($"step '{step}' cannot be built: {reason}", "build") { Retryable = false };
}
