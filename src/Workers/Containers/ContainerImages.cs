using System.Net;
using System.Text.RegularExpressions;
using Docker.DotNet;
using Docker.DotNet.Models;
using Pipelines.Core.Definitions;
using Pipelines.Core.Execution;

namespace Pipelines.Workers.Containers;

/// <summary>The image a container runs, as the engine knows it.</summary>
internal sealed record ResolvedImage(string Reference, ImageInspectResponse Inspect)
{
    /// <summary>The registry digest the image was pulled by (<c>repo@sha256:…</c>), or its local id for built and imported images.</summary>
    public string Digest =>
        Inspect.RepoDigests?.FirstOrDefault(d => d.StartsWith(Repository(Reference) + "@", StringComparison.Ordinal))
        ?? Inspect.RepoDigests?.FirstOrDefault()
        ?? Inspect.ID;

    private static string Repository(string reference)
    {
        var at = reference.IndexOf('@', StringComparison.Ordinal);
        if (at >= 0)
        {
            return reference[..at];
        }
        var colon = reference.LastIndexOf(':');
        return colon > reference.LastIndexOf('/') ? reference[..colon] : reference;
    }
}

/// <summary>Makes a container's image present on the engine: pulled when missing (with registry credentials), or built from its context.</summary>
internal sealed partial class ContainerImages(ContainerEngine engine)
{
    private IDockerClient Docker => engine.Client;

    public Task<ResolvedImage> PrepareAsync(ContainerDefinition container, string step, StepSecrets secrets, StepLogSink log, CancellationToken cancellationToken) =>
        container.Build is { } build
            ? BuildAsync(container, build, step, secrets, log, cancellationToken)
            : PullIfMissingAsync(container, step, secrets, log, cancellationToken);

    private async Task<ResolvedImage> PullIfMissingAsync(ContainerDefinition container, string step, StepSecrets secrets, StepLogSink log, CancellationToken cancellationToken)
    {
        var reference = container.ImageReference!;
        if (await TryInspectAsync(reference, cancellationToken) is { } present)
        {
            return new ResolvedImage(reference, present);
        }
        var auth = Credentials(container, reference, secrets);
        log.System($"pulling image {reference}" + (auth is null ? "" : $" as {auth.Username}"));
        string? error = null;
        try
        {
            await Docker.Images.CreateImageAsync(
                new ImagesCreateParameters { FromImage = reference },
                auth ?? new AuthConfig(),
                new Messages(message => error ??= message.Error?.Message ?? message.ErrorMessage),
                cancellationToken);
        }
        catch (DockerApiException e)
        {
            error = ApiError(e);
            if (e.StatusCode == HttpStatusCode.NotFound)
            {
                throw new StepFailedException(secrets.Mask($"{Where(container, step)} image '{reference}' could not be pulled: {error}"), "image") { Retryable = false };
            }
        }
        var pulled = await TryInspectAsync(reference, cancellationToken)
            ?? throw new StepFailedException(secrets.Mask($"{Where(container, step)} image '{reference}' could not be pulled: {error ?? "the engine reported no error, yet has no such image"}"), "image");
        var image = new ResolvedImage(reference, pulled);
        log.System($"pulled image {reference} ({image.Digest})");
        return image;
    }

    // A build's base images are pulled without credentials: 'registry' has no server name to send them to.
    private async Task<ResolvedImage> BuildAsync(ContainerDefinition container, BuildDefinition build, string step, StepSecrets secrets, StepLogSink log, CancellationToken cancellationToken)
    {
        var root = engine.Options.BuildContextRoot ?? Directory.GetCurrentDirectory();
        var context = await Task.Run(() => BuildContext.Scan(step, build, root, engine.Options.MaxBuildContextBytes), cancellationToken);
        var tag = $"pipelines-build/{RepositoryName(step)}:{context.Hash[..24]}";
        if (await TryInspectAsync(tag, cancellationToken) is { } cached)
        {
            log.System($"build: context {context.Directory} is unchanged; using image {tag}");
            return new ResolvedImage(tag, cached);
        }

        log.System($"build: building {tag} from {context.Directory} ({context.Dockerfile})");
        var lastLines = new Queue<string>();
        string? error = null;
        var progress = new Messages(message =>
        {
            error ??= message.Error?.Message ?? message.ErrorMessage;
            foreach (var line in (message.Stream ?? "").Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                log.System("build: " + line);
                lastLines.Enqueue(line);
                if (lastLines.Count > engine.Options.ErrorLogLines)
                {
                    lastLines.Dequeue();
                }
            }
        });
        var parameters = new ImageBuildParameters
        {
            Tags = [tag],
            Dockerfile = context.Dockerfile,
            BuildArgs = build.Args.ToDictionary(),
            Labels = new Dictionary<string, string>
            {
                [ContainerLabels.Managed] = "true",
                [ContainerLabels.Prefix + "build-hash"] = context.Hash,
            },
            Remove = true,
            ForceRemove = true,
            NetworkMode = engine.Options.BuildNetwork,
        };
        try
        {
            await using var archive = await context.ArchiveAsync(cancellationToken);
            await Docker.Images.BuildImageFromDockerfileAsync(parameters, archive, [], new Dictionary<string, string>(), progress, cancellationToken);
        }
        catch (DockerApiException e)
        {
            error ??= ApiError(e);
        }
        var built = error is null ? await TryInspectAsync(tag, cancellationToken) : null;
        if (built is null)
        {
            throw new StepFailedException(secrets.Mask(
                $"{Where(container, step)} image build failed: {error ?? "the engine built no image"}" +
                (lastLines.Count > 0 ? $"\nlast build lines:\n{string.Join('\n', lastLines)}" : "")), "build");
        }
        log.System($"build: built {tag} ({built.ID})");
        return new ResolvedImage(tag, built);
    }

    private async Task<ImageInspectResponse?> TryInspectAsync(string reference, CancellationToken cancellationToken)
    {
        try
        {
            return await Docker.Images.InspectImageAsync(reference, cancellationToken);
        }
        catch (DockerImageNotFoundException)
        {
            return null;
        }
    }

    /// <summary>Credentials for the registry of <paramref name="reference"/>; the password is resolved here, on the worker, and only masked text leaves.</summary>
    private static AuthConfig? Credentials(ContainerDefinition container, string reference, StepSecrets secrets) =>
        container.Registry is not { } registry ? null : new AuthConfig
        {
            Username = registry.Username,
            Password = secrets.Resolve(registry.Password.Name, "registry.password"),
            ServerAddress = RegistryOf(reference),
        };

    /// <summary>The registry host of an image reference, as <c>docker login</c> names it.</summary>
    internal static string RegistryOf(string reference)
    {
        var slash = reference.IndexOf('/', StringComparison.Ordinal);
        var first = slash < 0 ? "" : reference[..slash];
        return first.Contains('.', StringComparison.Ordinal) || first.Contains(':', StringComparison.Ordinal) || first == "localhost"
            ? first
            : "https://index.docker.io/v1/";
    }

    private static string RepositoryName(string step) => RepositoryUnsafe().Replace(step.ToLowerInvariant(), "-").Trim('-') is { Length: > 0 } name ? name : "step";

    private static string Where(ContainerDefinition container, string step) =>
        container is SidecarDefinition sidecar ? $"step '{step}' sidecar '{sidecar.Name}':" : $"step '{step}':";

    private static string ApiError(DockerApiException e) =>
        string.IsNullOrWhiteSpace(e.ResponseBody) ? e.StatusCode.ToString() : e.ResponseBody.Trim();

    [GeneratedRegex("[^a-z0-9]+")]
    private static partial Regex RepositoryUnsafe();

    /// <summary>Reports engine progress messages as they arrive; <see cref="Progress{T}"/> would post them later, after the call returned.</summary>
    private sealed class Messages(Action<JSONMessage> report) : IProgress<JSONMessage>
    {
        public void Report(JSONMessage value) => report(value);
    }
}
