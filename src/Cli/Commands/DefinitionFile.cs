using System.CommandLine;
using Pipelines.Core.Definitions;

namespace Pipelines.Cli.Commands;

/// <summary>The definition file every command reads, and how its diagnostics are printed.</summary>
internal static class DefinitionFile
{
    public const string DefaultPath = "config/pipelines.yaml";

    public static Option<string> Option() => new("--file", "-f")
    {
        Description = $"Definition file (YAML, JSON or copili format). Default: $PIPELINES_FILE or {DefaultPath}.",
    };

    public static string Resolve(string? given) =>
        given ?? (Environment.GetEnvironmentVariable("PIPELINES_FILE") is { Length: > 0 } fromEnvironment ? fromEnvironment : DefaultPath);

    /// <summary>Loads the file and prints its diagnostics to stderr; null when it has errors.</summary>
    public static PipelineFileDefinition? Load(string path, TextWriter errors)
    {
        var result = new PipelineLoader().LoadFile(path);
        foreach (var diagnostic in result.Diagnostics)
        {
            errors.WriteLine(diagnostic);
        }
        return result.Definitions;
    }
}
