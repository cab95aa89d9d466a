using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Pipelines.Core.Coordination;
using Pipelines.Core.Hosting;
using Pipelines.Core.Persistence;
using Pipelines.Core.Planning;
using Pipelines.Core.Runs;
using Pipelines.Workers.Demo;
using Pipelines.Workers.Hosting;

namespace Pipelines.Cli.Commands;

/// <summary>
/// <c>pipelines run PIPELINE</c>: runs a pipeline on the embedded default — coordinator and worker
/// in this process, MassTransit's in-memory transport, a SQLite file under <c>data/</c> — and
/// shows each step's state and log as it happens.
/// </summary>
internal static class RunCommand
{
    public static Command Create()
    {
        var pipeline = new Argument<string>("pipeline") { Description = "Name of the pipeline to run." };
        var file = DefinitionFile.Option();
        var payload = new Option<string?>("--payload") { Description = "The run's input as a JSON object, e.g. '{\"day\":\"2026-11-01\"}'." };
        var data = new Option<string>("--data")
        {
            Description = "Folder of the embedded run store (SQLite).",
            DefaultValueFactory = _ => "data",
        };
        var command = new Command("run", "Run a pipeline here and now on the embedded default; exit 1 if it fails.") { pipeline, file, payload, data };
        command.SetAction((result, cancellationToken) => new Runner(result.InvocationConfiguration.Output, result.InvocationConfiguration.Error).RunAsync(
            result.GetValue(pipeline)!, DefinitionFile.Resolve(result.GetValue(file)), result.GetValue(payload), result.GetValue(data)!, cancellationToken));
        return command;
    }

    private sealed class Runner(TextWriter output, TextWriter error)
    {
        public async Task<int> RunAsync(string pipelineName, string file, string? payloadText, string dataFolder, CancellationToken cancellationToken)
        {
            var definitions = DefinitionFile.Load(file, error);
            if (definitions is null)
            {
                return 1;
            }
            JsonObject? payload;
            try
            {
                payload = payloadText is null ? null : JsonNode.Parse(payloadText) as JsonObject
                    ?? throw new JsonException("the payload must be a JSON object");
            }
            catch (JsonException exception)
            {
                error.WriteLine($"error: --payload: {exception.Message}");
                return 1;
            }

            var builder = Host.CreateApplicationBuilder();
            builder.Logging.ClearProviders().AddSimpleConsole(o => o.SingleLine = true).SetMinimumLevel(LogLevel.Warning);
            builder.Services.AddSingleton(new PipelineCatalog(definitions));
            builder.Services.AddPipelines(builder.Configuration, options =>
                {
                    options.Transport = TransportKind.InMemory;
                    options.Database = new RunStoreOptions
                    {
                        Provider = RunStoreProvider.Sqlite,
                        ConnectionString = $"Data Source={Path.Combine(dataFolder, "pipelines.db")}",
                    };
                })
                .AddCoordinator()
                .AddWorker()
                .AddContainers()
                .AddDemoHandlers();
            using var host = builder.Build();
            await host.StartAsync(cancellationToken);
            try
            {
                var launcher = host.Services.GetRequiredService<RunLauncher>();
                LaunchedRun run;
                try
                {
                    run = await launcher.StartAsync(new RunRequest { Pipeline = pipelineName, Payload = payload, Trigger = RunTriggers.Cli }, cancellationToken);
                }
                catch (Exception exception) when (exception is UnknownPipelineException or InvalidRunInputException)
                {
                    error.WriteLine($"error: {exception.Message}");
                    return 1;
                }
                output.WriteLine($"run {run.RunId} of '{pipelineName}' started");
                var final = await FollowAsync(host.Services.GetRequiredService<RunQueries>(), launcher, run.RunId, cancellationToken);
                return final == RunState.Succeeded ? 0 : 1;
            }
            finally
            {
                await host.StopAsync(CancellationToken.None);
            }
        }

        /// <summary>Prints state changes and log lines until the run ends; Ctrl+C cancels the run.</summary>
        private async Task<RunState> FollowAsync(RunQueries queries, RunLauncher launcher, Guid runId, CancellationToken cancellationToken)
        {
            var clock = Stopwatch.StartNew();
            var seen = new Dictionary<string, (StepState State, int Attempts)>(StringComparer.Ordinal);
            long lastLog = 0;
            var cancelling = false;
            while (true)
            {
                if (cancellationToken.IsCancellationRequested && !cancelling)
                {
                    cancelling = true;
                    output.WriteLine("cancelling the run...");
                    await launcher.CancelAsync(runId, CancellationToken.None);
                }
                var run = (await queries.GetAsync(runId, CancellationToken.None) ?? throw new RunNotFoundException(runId)).Run;
                var logs = await queries.RunLogAsync(runId, lastLog, 1000, CancellationToken.None);
                foreach (var step in run.Steps.OrderBy(s => s.StartedAt ?? DateTimeOffset.MaxValue).ThenBy(s => s.Name, StringComparer.Ordinal))
                {
                    if (!seen.TryGetValue(step.Name, out var before) || before != (step.State, step.Attempts))
                    {
                        seen[step.Name] = (step.State, step.Attempts);
                        if (step.State != StepState.Pending)
                        {
                            var attempt = step.Attempts > 1 ? $" (attempt {step.Attempts})" : "";
                            output.WriteLine($"[{clock.Elapsed:mm\\:ss\\.ff}] {step.Name}: {step.State.ToString().ToLowerInvariant()}{attempt}");
                        }
                    }
                }
                foreach (var line in logs)
                {
                    output.WriteLine($"[{clock.Elapsed:mm\\:ss\\.ff}]   {line.Step} | {line.Text}");
                    lastLog = line.Id;
                }
                if (run.State.IsTerminal())
                {
                    PrintSummary(run);
                    return run.State;
                }
                await Task.Delay(TimeSpan.FromMilliseconds(100), CancellationToken.None);
            }
        }

        private static string Shorten(string text) => text.Length <= 160 ? text : $"{text[..157]}...";

        private void PrintSummary(RunRecord run)
        {
            output.WriteLine();
            foreach (var step in run.Steps.OrderBy(s => s.StartedAt ?? DateTimeOffset.MaxValue).ThenBy(s => s.Name, StringComparer.Ordinal))
            {
                var detail = step.State switch
                {
                    StepState.Succeeded or StepState.Compensated => Shorten(step.Output ?? "(no output)"),
                    StepState.Failed => $"{step.ErrorKind}: {step.ErrorMessage}",
                    _ => "",
                };
                output.WriteLine($"  {step.Name,-24} {step.State.ToString().ToLowerInvariant(),-11} {detail}");
            }
            output.WriteLine();
            output.WriteLine(run.State == RunState.Succeeded
                ? $"run {run.Id} succeeded"
                : $"run {run.Id} {run.State.ToString().ToLowerInvariant()}{(run.FailedStep is null ? "" : $": step '{run.FailedStep}' failed")}");
        }
    }
}
