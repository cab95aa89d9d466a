using System.Diagnostics.CodeAnalysis;
using System.Text.RegularExpressions;

namespace Pipelines.Core.Definitions;

/// <summary>
/// A container image reference taken apart by Docker's grammar:
/// <c>[HOST[:PORT]/]PATH[:TAG][@sha256:DIGEST]</c>. The first component is a registry host when it has a
/// <c>.</c> or a <c>:</c> or is <c>localhost</c>; the path's components are lowercase letters and digits
/// joined by <c>.</c>, <c>_</c>, <c>__</c> or dashes.
/// </summary>
public sealed partial record ImageReferenceParts(string? Registry, string Repository, string? Tag, string? Digest)
{
    /// <summary>Docker's limit on the length of a repository name, registry included.</summary>
    public const int MaxNameLength = 255;

    public const string TagRule = "1-128 letters, digits, '_', '.' or '-', not starting with '.' or '-'";

    /// <summary>Takes <paramref name="reference"/> apart, or says what is wrong with it.</summary>
    public static bool TryParse(string reference, [NotNullWhen(true)] out ImageReferenceParts? parts, out string problem)
    {
        ArgumentNullException.ThrowIfNull(reference);
        parts = null;
        problem = Problem(reference, out var registry, out var repository, out var tag, out var digest) ?? "";
        if (problem.Length > 0)
        {
            return false;
        }
        parts = new ImageReferenceParts(registry, repository, tag, digest);
        return true;
    }

    /// <summary>What is wrong with <paramref name="tag"/> as an image tag, or null when it is one.</summary>
    public static string? TagProblem(string tag) =>
        TagRegex().IsMatch(tag) ? null : $"tag '{tag}' must be {TagRule}";

    private static string? Problem(string reference, out string? registry, out string repository, out string? tag, out string? digest)
    {
        registry = tag = digest = null;
        repository = "";
        if (reference.Length == 0)
        {
            return "it is empty";
        }
        if (reference.Any(char.IsWhiteSpace))
        {
            return "it contains whitespace";
        }
        var name = reference;
        var at = name.IndexOf('@', StringComparison.Ordinal);
        if (at >= 0)
        {
            digest = name[(at + 1)..];
            name = name[..at];
            if (!DigestRegex().IsMatch(digest))
            {
                return $"digest '{digest}' must be 'sha256:' followed by 64 lowercase hexadecimal digits";
            }
        }
        var colon = name.LastIndexOf(':');
        if (colon > name.LastIndexOf('/'))
        {
            tag = name[(colon + 1)..];
            name = name[..colon];
            if (TagProblem(tag) is { } tagProblem)
            {
                return tagProblem;
            }
        }
        if (name.Length > MaxNameLength)
        {
            return $"the name is {name.Length} characters long; Docker allows at most {MaxNameLength}";
        }
        var slash = name.IndexOf('/', StringComparison.Ordinal);
        if (slash >= 0 && (name[..slash].IndexOfAny(['.', ':']) >= 0 || name[..slash] == "localhost"))
        {
            registry = name[..slash];
            name = name[(slash + 1)..];
            if (!RegistryRegex().IsMatch(registry))
            {
                return $"registry '{registry}' must be a host name (letters, digits, '-' and '.') with an optional :PORT";
            }
        }
        repository = name;
        if (repository.Length == 0)
        {
            return "the repository path is empty";
        }
        if (repository.Any(char.IsUpper))
        {
            return $"repository path '{repository}' must be lowercase";
        }
        foreach (var component in repository.Split('/'))
        {
            if (!PathComponentRegex().IsMatch(component))
            {
                return component.Length == 0
                    ? $"repository path '{repository}' has an empty component"
                    : $"path component '{component}' must be lowercase letters and digits, joined by '.', '_', '__' or '-'";
            }
        }
        return null;
    }

    public override string ToString() =>
        (Registry is null ? "" : Registry + "/") + Repository + (Tag is null ? "" : ":" + Tag) + (Digest is null ? "" : "@" + Digest);

    [GeneratedRegex(@"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")]
    private static partial Regex TagRegex();

    [GeneratedRegex("^sha256:[0-9a-f]{64}$")]
    private static partial Regex DigestRegex();

    [GeneratedRegex(@"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:]+\])(?::[0-9]{1,5})?$")]
    private static partial Regex RegistryRegex();

    [GeneratedRegex("^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")]
    private static partial Regex PathComponentRegex();
}
