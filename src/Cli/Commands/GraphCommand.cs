using System.CommandLine;
using Pipelines.Core.Definitions;
using Pipelines.Core.Graph;

namespace Pipelines.Cli.Commands;

internal static class GraphCommand
{
    public static Command Create()
    {
        var pipeline = new Argument<string>("pipeline") { Description = "Name of the pipeline to draw." };
        var file = DefinitionFile.Option();
        var format = new Option<string>("--format")
        {
            Description = "mermaid (default) or dot.",
            DefaultValueFactory = _ => "mermaid",
        };
        format.AcceptOnlyFromAmong("mermaid", "dot");
        var command = new Command("graph", "Draw a pipeline's DAG; boxes are the routing slips it runs as.") { pipeline, file, format };
        command.SetAction(result =>
        {
            var (output, errors) = (result.InvocationConfiguration.Output, result.InvocationConfiguration.Error);
            var definitions = DefinitionFile.Load(DefinitionFile.Resolve(result.GetValue(file)), errors);
            if (definitions is null)
            {
                return 1;
            }
            var name = result.GetValue(pipeline)!;
            if (!definitions.Pipelines.TryGetValue(name, out var definition))
            {
                errors.WriteLine($"error: unknown pipeline '{name}'{Suggestions.DidYouMean(name, definitions.Pipelines.Keys)} (pipelines: {string.Join(", ", definitions.Pipelines.Keys)})");
                return 1;
            }
            var graph = PipelineGraph.Build(definition);
            output.Write(result.GetValue(format) == "dot" ? GraphRenderer.Dot(graph) : GraphRenderer.Mermaid(graph));
            return 0;
        });
        return command;
    }
}
