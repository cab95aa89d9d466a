using System.Security.Cryptography;
using System.Text;
using Pipelines.Core.Definitions;
using Pipelines.Core.Graph;

namespace Pipelines.Core.Planning;

/// <summary>A loaded pipeline with its graph and the hash that identifies its definition.</summary>
public sealed record CatalogEntry(PipelineDefinition Definition, PipelineGraph Graph, string Hash);

/// <summary>
/// The pipelines every role of a deployment shares, loaded from the same definition file. Messages
/// name a pipeline and a step; each process looks the definition up here, so neither definitions
/// nor the secrets they reference travel on the bus.
/// </summary>
public sealed class PipelineCatalog
{
    private readonly Dictionary<string, CatalogEntry> _entries;

    public PipelineCatalog(PipelineFileDefinition definitions)
    {
        ArgumentNullException.ThrowIfNull(definitions);
        _entries = definitions.Pipelines.Values.ToDictionary(
            p => p.Name,
            p => new CatalogEntry(p, PipelineGraph.Build(p), HashOf(p)),
            StringComparer.Ordinal);
    }

    public IReadOnlyCollection<CatalogEntry> Pipelines => _entries.Values;

    public IEnumerable<string> Names => _entries.Keys.Order(StringComparer.Ordinal);

    public CatalogEntry? Find(string pipeline) => _entries.GetValueOrDefault(pipeline);

    public CatalogEntry Get(string pipeline) => Find(pipeline)
        ?? throw new UnknownPipelineException(pipeline, Suggestions.Closest(pipeline, _entries.Keys));

    /// <summary>Loads a definition file; throws with every diagnostic when it has errors.</summary>
    public static PipelineCatalog Load(string path, PipelineLoaderOptions? options = null)
    {
        var result = new PipelineLoader(options).LoadFile(path);
        return result.Definitions is { } definitions
            ? new PipelineCatalog(definitions)
            : throw new InvalidDefinitionException(result.Errors.ToList());
    }

    private static string HashOf(PipelineDefinition pipeline)
    {
        var text = new StringBuilder();
        foreach (var step in pipeline.Steps.OrderBy(s => s.Name, StringComparer.Ordinal))
        {
            text.Append(step.Name).Append('|').Append(step.Handler).Append('|').Append(step.ImageReference)
                .Append('|').Append(step.Command).Append('|').Append(step.Entrypoint)
                .Append('|').AppendJoin(',', step.DependsOn.Order(StringComparer.Ordinal))
                .Append('|').AppendJoin(',', step.Env.OrderBy(e => e.Key, StringComparer.Ordinal).Select(e => $"{e.Key}={e.Value}"))
                .Append('|').Append(step.Pool).Append('\n');
        }
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text.ToString())));
    }
}

public sealed class UnknownPipelineException(string pipeline, string? suggestion)
    : Exception($"unknown pipeline '{pipeline}'{(suggestion is null ? "" : $"; did you mean '{suggestion}'?")}")
{
    public string Pipeline { get; } = pipeline;
}

public sealed class InvalidDefinitionException(IReadOnlyList<DefinitionError> errors)
    : Exception(string.Join(Environment.NewLine, errors))
{
    public IReadOnlyList<DefinitionError> Errors { get; } = errors;
}
