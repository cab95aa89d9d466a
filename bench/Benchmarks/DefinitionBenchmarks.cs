using System.Globalization;
using System.Text;
using Pipelines.Core.Definitions;
using Pipelines.Core.Graph;

namespace Pipelines.Bench.Benchmarks;

/// <summary>
/// Loading, validating and planning definitions (issue 2: a 10,000-step pipeline well under a
/// second), and refusing hostile files within <see cref="DefinitionLimits"/>.
/// </summary>
internal sealed class DefinitionBenchmarks : IBenchmarkGroup
{
    private const string BaseDirectory = ".";

    // No process environment and no .env file: the figures must not depend on the machine.
    private readonly PipelineLoader _loader = new(new PipelineLoaderOptions { Variables = new Dictionary<string, string>() });

    public string Name => "definitions";

    public IEnumerable<Benchmark> Create()
    {
        foreach (var (steps, iterations) in new[] { (1_000, 40), (10_000, 15) })
        {
            var file = $"generated-{steps}.yaml";
            var yaml = Encoding.UTF8.GetBytes(PipelineYamlGenerator.Generate(steps));
            var pipeline = Loaded(_loader.Load(yaml, file, BaseDirectory), steps);
            var chains = PipelineGraph.Build(pipeline).Chains.Count;
            var input = $"{steps:N0} steps ({BenchmarkRunner.Bytes(yaml.Length)})";

            yield return new Benchmark("load + validate", input, iterations,
                () => _loader.Load(yaml, file, BaseDirectory),
                result => Loaded((LoadResult)result!, steps));
            yield return new Benchmark("plan: graph + chains", $"{steps:N0} steps, {chains:N0} chains", iterations,
                () => PipelineGraph.Build(pipeline),
                result => CheckPlan((PipelineGraph)result!, steps));
            yield return new Benchmark("load + validate + plan", input, iterations,
                () => PipelineGraph.Build(Loaded(_loader.Load(yaml, file, BaseDirectory), steps)),
                result => CheckPlan((PipelineGraph)result!, steps));
        }

        foreach (var (name, input, text, expected) in HostileFiles())
        {
            var bytes = Encoding.UTF8.GetBytes(text);
            yield return new Benchmark(name, input, 40,
                () => _loader.Load(bytes, "hostile.yaml", BaseDirectory),
                result => Refused((LoadResult)result!, expected));
        }
    }

    private static IEnumerable<(string Name, string Input, string Text, string Expected)> HostileFiles()
    {
        // "Billion laughs": nine lines that expand to 10^9 nodes.
        var bomb = new StringBuilder("x0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for (var level = 1; level < 9; level++)
        {
            var alias = $"*a{level - 1}";
            bomb.Append(CultureInfo.InvariantCulture, $"x{level}: &a{level} [{string.Join(", ", Enumerable.Repeat(alias, 10))}]\n");
        }
        yield return ("refuse alias bomb", "9 lines, 10^9 nodes expanded", bomb.ToString(), "once aliases are resolved");

        const int depth = 10_000;
        yield return ("refuse deep nesting", $"{depth:N0} nested lists", $"pipelines: {new string('[', depth)}{new string(']', depth)}\n",
            "nesting deeper than");

        var huge = "# " + new string('x', 10 * 1024 * 1024) + "\n";
        yield return ("refuse 10 MiB file", "10 MiB comment", huge, "definition files are limited to");
    }

    private static PipelineDefinition Loaded(LoadResult result, int steps)
    {
        if (!result.Succeeded)
        {
            throw new InvalidOperationException("The generated pipeline does not load:\n" + string.Join('\n', result.Errors.Take(10)));
        }
        var pipeline = result.Definitions!.Pipelines.Values.Single();
        if (pipeline.Steps.Count != steps)
        {
            throw new InvalidOperationException($"The generated pipeline has {pipeline.Steps.Count} steps, not {steps}.");
        }
        return pipeline;
    }

    private static void CheckPlan(PipelineGraph graph, int steps)
    {
        var planned = graph.Chains.Sum(c => c.Steps.Count);
        if (planned != steps || graph.TopologicalOrder.Count != steps)
        {
            throw new InvalidOperationException($"The plan covers {planned} of {steps} steps.");
        }
    }

    private static void Refused(LoadResult result, string expected)
    {
        if (result.Succeeded || !result.Errors.Any(e => e.Message.Contains(expected, StringComparison.Ordinal)))
        {
            throw new InvalidOperationException(
                $"A hostile file was not refused with '{expected}': {string.Join("; ", result.Diagnostics)}");
        }
    }
}
