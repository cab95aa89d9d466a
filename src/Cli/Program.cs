using System.CommandLine;
using Pipelines.Cli.Commands;

var root = new RootCommand("Pipelines: declare DAGs of steps in YAML and run them on scalable workers.")
{
    ValidateCommand.Create(),
    GraphCommand.Create(),
    SchemaCommand.Create(),
};
return await root.Parse(args).InvokeAsync();
