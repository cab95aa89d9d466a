using Pipelines.Cli;

return await PipelinesCli.RunAsync(args, Console.Out, Console.Error);
