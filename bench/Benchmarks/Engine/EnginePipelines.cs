using System.Text;

namespace Pipelines.Bench.Benchmarks.Engine;

/// <summary>A pipeline the engine runs in the benchmark; every step is the worker's <c>demo.echo</c> handler, which returns the run's (empty) input.</summary>
internal sealed record EnginePipeline(string Name, string Description, int Steps);

/// <summary>The benchmark's pipelines and their definition file, which the worker process and the coordinator both load.</summary>
internal static class EnginePipelines
{
    public const string Handler = "demo.echo";

    public static readonly EnginePipeline OneStep = new("one-step", "1 step", 1);

    public static readonly EnginePipeline Chain = new("chain", "5-step chain", 5);

    /// <summary>A fork into 10 parallel steps and their join: one routing slip for the fork, one per branch, one for the join.</summary>
    public static readonly EnginePipeline Diamond = new("diamond", "diamond: 1 → 10 parallel → join", 12);

    public static string Write(string directory)
    {
        var yaml = new StringBuilder();
        yaml.AppendLine("pipelines:");
        yaml.AppendLine("  one-step:");
        yaml.AppendLine("    steps:");
        Step(yaml, "echo");

        yaml.AppendLine("  chain:");
        yaml.AppendLine("    steps:");
        Step(yaml, "step-1");
        for (var i = 2; i <= Chain.Steps; i++)
        {
            Step(yaml, $"step-{i}", $"step-{i - 1}");
        }

        yaml.AppendLine("  diamond:");
        yaml.AppendLine("    steps:");
        Step(yaml, "fork");
        var branches = Enumerable.Range(1, Diamond.Steps - 2).Select(i => $"branch-{i}").ToList();
        foreach (var branch in branches)
        {
            Step(yaml, branch, "fork");
        }
        Step(yaml, "join", [.. branches]);

        var path = Path.Combine(directory, "pipelines.yaml");
        File.WriteAllText(path, yaml.ToString());
        return path;
    }

    private static void Step(StringBuilder yaml, string name, params string[] dependsOn)
    {
        yaml.Append("      - name: ").AppendLine(name);
        yaml.Append("        handler: ").AppendLine(Handler);
        if (dependsOn.Length > 0)
        {
            yaml.Append("        depends_on: [").AppendJoin(", ", dependsOn).AppendLine("]");
        }
    }
}
