using System.CommandLine;
using Pipelines.Core.Definitions;

namespace Pipelines.Cli.Commands;

internal static class SchemaCommand
{
    public static Command Create()
    {
        var command = new Command("schema", "Print the JSON Schema of the definition format (for editor completion).");
        command.SetAction(result =>
        {
            result.InvocationConfiguration.Output.Write(PipelineSchema.Generate());
            return 0;
        });
        return command;
    }
}
