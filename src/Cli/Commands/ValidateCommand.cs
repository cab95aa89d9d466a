using System.CommandLine;

namespace Pipelines.Cli.Commands;

internal static class ValidateCommand
{
    public static Command Create()
    {
        var file = new Argument<string?>("file")
        {
            Description = $"Definition file to check. Default: $PIPELINES_FILE or {DefinitionFile.DefaultPath}.",
            Arity = ArgumentArity.ZeroOrOne,
        };
        var command = new Command("validate", "Check a definition file and print every error as FILE:LINE:COLUMN: error: MESSAGE. Exit code 1 on errors.")
        {
            file,
        };
        command.SetAction(result =>
        {
            var path = DefinitionFile.Resolve(result.GetValue(file));
            var definitions = DefinitionFile.Load(path, result.InvocationConfiguration.Error);
            if (definitions is null)
            {
                return 1;
            }
            var steps = definitions.Pipelines.Values.Sum(p => p.Steps.Count);
            var schedules = definitions.Pipelines.Values.Sum(p => p.Schedules.Count);
            result.InvocationConfiguration.Output.WriteLine($"{path}: valid — {Count(definitions.Pipelines.Count, "pipeline")}, {Count(steps, "step")}, {Count(schedules, "schedule")}");
            return 0;
        });
        return command;
    }

    private static string Count(int n, string noun) => $"{n} {noun}{(n == 1 ? "" : "s")}";
}
