using System.CommandLine;
using Pipelines.Cli.Commands;

namespace Pipelines.Cli;

/// <summary>
/// The <c>pipelines</c> command line. <see cref="RunAsync"/> takes the writers it prints to, so the
/// commands run the same in-process (tests) as from a terminal.
/// </summary>
public static class PipelinesCli
{
    public static RootCommand CreateRootCommand() => new("Pipelines: declare DAGs of steps in YAML and run them on scalable workers.")
    {
        ValidateCommand.Create(),
        GraphCommand.Create(),
        SchemaCommand.Create(),
        RunCommand.Create(),
    };

    /// <summary>Parses <paramref name="args"/>, runs the command and returns its exit code.</summary>
    public static Task<int> RunAsync(string[] args, TextWriter output, TextWriter error, CancellationToken cancellationToken = default) =>
        CreateRootCommand().Parse(args).InvokeAsync(new InvocationConfiguration { Output = output, Error = error }, cancellationToken);
}
