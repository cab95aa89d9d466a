namespace Pipelines.Core.Definitions;

/// <summary>
/// Caps that keep a hostile definition file (alias bomb, deep nesting, a huge file) from costing
/// more than a fraction of a second or a few megabytes. Documented in docs/pipelines-yaml.md.
/// </summary>
public sealed record DefinitionLimits
{
    /// <summary>Largest file accepted, in bytes. Default 4 MiB (a 10,000-step pipeline is about 1 MiB).</summary>
    public long MaxFileBytes { get; init; } = 4 * 1024 * 1024;

    /// <summary>Deepest nesting of mappings and sequences. Default 64.</summary>
    public int MaxDepth { get; init; } = 64;

    /// <summary>
    /// Most nodes the document may have once every alias is expanded. Default 1,000,000;
    /// an alias bomb ("billion laughs") exceeds it after a few lines.
    /// </summary>
    public long MaxExpandedNodes { get; init; } = 1_000_000;

    /// <summary>Deepest nesting of variable defaults, as in <c>${A:-${B:-${C}}}</c> (two). Default 8.</summary>
    public int MaxDefaultNesting { get; init; } = 8;

    public static DefinitionLimits Default { get; } = new();
}
