using Pipelines.Core.Definitions;

namespace Pipelines.Core.Tests.Definitions;

/// <summary>Loads definition text the way the cases expect: with fixed variables, so the machine's environment never leaks in.</summary>
internal static class CaseLoader
{
    public static readonly IReadOnlyDictionary<string, string> Variables = new Dictionary<string, string>
    {
        ["REGISTRY"] = "registry.example.com",
    };

    public static PipelineLoader Loader(IReadOnlyDictionary<string, string>? variables = null) =>
        new(new PipelineLoaderOptions { Variables = variables ?? Variables });

    public static LoadResult Load(string text, string file = "pipelines.yaml", IReadOnlyDictionary<string, string>? variables = null) =>
        Load(System.Text.Encoding.UTF8.GetBytes(text), file, variables);

    public static LoadResult Load(byte[] content, string file, IReadOnlyDictionary<string, string>? variables = null) =>
        Loader(variables).Load(content, file, AppContext.BaseDirectory);

    public static string Lines(LoadResult result) => string.Join('\n', result.Diagnostics);
}
