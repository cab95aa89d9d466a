namespace Pipelines.Tests;

/// <summary>The checkout the tests run from, found by walking up to Pipelines.sln.</summary>
internal static class RepositoryRoot
{
    public static string Path { get; } = Find();

    public static string File(string relativePath) => System.IO.Path.Combine(Path, relativePath);

    private static string Find()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (System.IO.File.Exists(System.IO.Path.Combine(directory.FullName, "Pipelines.sln")))
            {
                return directory.FullName;
            }
        }
        throw new InvalidOperationException($"No Pipelines.sln above {AppContext.BaseDirectory}.");
    }
}
