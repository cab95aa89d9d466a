using System.Globalization;
using System.Text;

namespace Pipelines.Core.Graph;

/// <summary>Draws a pipeline's DAG as Mermaid or Graphviz DOT. Routing slips (chains) are shown as boxes when there is more than one.</summary>
public static class GraphRenderer
{
    public static string Mermaid(PipelineGraph graph)
    {
        var text = new StringBuilder("flowchart TD\n");
        var showChains = graph.Chains.Count > 1;
        foreach (var chain in graph.Chains)
        {
            var indent = showChains ? "        " : "    ";
            if (showChains)
            {
                text.Append(CultureInfo.InvariantCulture, $"    subgraph slip{chain.Index}[\"slip {chain.Index + 1}\"]\n");
            }
            foreach (var step in chain.Steps)
            {
                text.Append(CultureInfo.InvariantCulture, $"{indent}{MermaidId(step)}[\"{Escape(step)}<br/><small>{Escape(Kind(graph, step))}</small>\"]\n");
            }
            if (showChains)
            {
                text.Append("    end\n");
            }
        }
        foreach (var child in graph.TopologicalOrder)
        {
            foreach (var parent in graph.Parents[child])
            {
                text.Append(CultureInfo.InvariantCulture, $"    {MermaidId(graph.Step(parent).Name)} --> {MermaidId(graph.Step(child).Name)}\n");
            }
        }
        return text.ToString();
    }

    public static string Dot(PipelineGraph graph)
    {
        var text = new StringBuilder($"digraph \"{Escape(graph.Pipeline.Name)}\" {{\n    rankdir=TB;\n    node [shape=box, style=rounded];\n");
        var showChains = graph.Chains.Count > 1;
        foreach (var chain in graph.Chains)
        {
            var indent = showChains ? "        " : "    ";
            if (showChains)
            {
                text.Append(CultureInfo.InvariantCulture, $"    subgraph cluster_slip{chain.Index} {{\n        label=\"slip {chain.Index + 1}\";\n        style=dashed;\n");
            }
            foreach (var step in chain.Steps)
            {
                text.Append(CultureInfo.InvariantCulture, $"{indent}\"{Escape(step)}\" [label=\"{Escape(step)}\\n{Escape(Kind(graph, step))}\"];\n");
            }
            if (showChains)
            {
                text.Append("    }\n");
            }
        }
        foreach (var child in graph.TopologicalOrder)
        {
            foreach (var parent in graph.Parents[child])
            {
                text.Append(CultureInfo.InvariantCulture, $"    \"{Escape(graph.Step(parent).Name)}\" -> \"{Escape(graph.Step(child).Name)}\";\n");
            }
        }
        return text.Append("}\n").ToString();
    }

    /// <summary>What runs the step: <c>handler: extract</c> or <c>image: alpine:3.20</c>.</summary>
    public static string Kind(PipelineGraph graph, string stepName)
    {
        var step = graph.Step(graph.IndexOf(stepName));
        return step.Handler is { } handler ? $"handler: {handler}"
            : step.ImageReference is { } image ? $"image: {image}"
            : $"build: {step.Build?.Context}";
    }

    private static string MermaidId(string name) => "s_" + string.Concat(name.Select(c => char.IsAsciiLetterOrDigit(c) ? c.ToString() : $"_{(int)c:x}"));

    private static string Escape(string text) => text.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal);
}
