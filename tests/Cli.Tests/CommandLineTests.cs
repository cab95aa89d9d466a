using Pipelines.Core.Definitions;
using Pipelines.Tests;

namespace Pipelines.Cli.Tests;

public sealed class CommandLineTests : IDisposable
{
    private const string Diamond = """
        pipelines:
          diamond:
            steps:
              - name: fetch
                handler: demo.fetch
              - name: left
                handler: demo.left
                depends_on: [fetch]
              - name: right
                image: alpine:3.20
                depends_on: [fetch]
              - name: join
                handler: demo.join
                depends_on: [left, right]
              - name: publish
                handler: demo.publish
                depends_on: [join]
        """;

    private readonly string _directory = Directory.CreateTempSubdirectory("pipelines-cli-tests-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public async Task validate_of_the_example_file_exits_0_with_a_summary()
    {
        var path = RepositoryRoot.File("config/pipelines.yaml");

        var run = await CliRun.Of("validate", path);

        Assert.Equal(0, run.ExitCode);
        Assert.Equal($"{path}: valid — 2 pipelines, 7 steps, 1 schedule\n", run.Output);
        Assert.Empty(run.Error);
    }

    [Fact]
    public async Task validate_of_a_bad_file_exits_1_with_every_error_on_stderr()
    {
        var path = Write("bad.yaml", """
            pipelines:
              etl:
                steps:
                  - name: load
                    handler: etl.load
                    depends_on: [extrct]
                    timeout: soon
            """);

        var run = await CliRun.Of("validate", path);

        Assert.Equal(1, run.ExitCode);
        Assert.Empty(run.Output);
        Assert.Equal(
            $"{path}:6:22: error: step 'load' depends on unknown step 'extrct'\n" +
            $"{path}:7:18: error: step 'load': 'timeout' must be a duration such as 500ms, 30s, 10m or 1h, got 'soon'\n",
            run.Error);
    }

    [Fact]
    public async Task validate_of_a_missing_file_exits_1_and_names_it()
    {
        var path = Path.Combine(_directory, "absent.yaml");

        var run = await CliRun.Of("validate", path);

        Assert.Equal(1, run.ExitCode);
        Assert.Equal($"{path}:1:1: error: file not found\n", run.Error);
    }

    [Fact]
    public async Task graph_draws_mermaid_by_default_with_one_box_per_routing_slip()
    {
        var run = await CliRun.Of("graph", "diamond", "--file", Write("diamond.yaml", Diamond));

        Assert.Equal(0, run.ExitCode);
        Assert.Empty(run.Error);
        Assert.Equal("""
            flowchart TD
                subgraph slip0["slip 1"]
                    s_fetch["fetch<br/><small>handler: demo.fetch</small>"]
                end
                subgraph slip1["slip 2"]
                    s_left["left<br/><small>handler: demo.left</small>"]
                end
                subgraph slip2["slip 3"]
                    s_right["right<br/><small>image: alpine:3.20</small>"]
                end
                subgraph slip3["slip 4"]
                    s_join["join<br/><small>handler: demo.join</small>"]
                    s_publish["publish<br/><small>handler: demo.publish</small>"]
                end
                s_fetch --> s_left
                s_fetch --> s_right
                s_left --> s_join
                s_right --> s_join
                s_join --> s_publish

            """, run.Output);
    }

    [Fact]
    public async Task graph_draws_graphviz_dot_on_request()
    {
        var run = await CliRun.Of("graph", "diamond", "--file", Write("diamond.yaml", Diamond), "--format", "dot");

        Assert.Equal(0, run.ExitCode);
        Assert.Equal("""
            digraph "diamond" {
                rankdir=TB;
                node [shape=box, style=rounded];
                subgraph cluster_slip0 {
                    label="slip 1";
                    style=dashed;
                    "fetch" [label="fetch\nhandler: demo.fetch"];
                }
                subgraph cluster_slip1 {
                    label="slip 2";
                    style=dashed;
                    "left" [label="left\nhandler: demo.left"];
                }
                subgraph cluster_slip2 {
                    label="slip 3";
                    style=dashed;
                    "right" [label="right\nimage: alpine:3.20"];
                }
                subgraph cluster_slip3 {
                    label="slip 4";
                    style=dashed;
                    "join" [label="join\nhandler: demo.join"];
                    "publish" [label="publish\nhandler: demo.publish"];
                }
                "fetch" -> "left";
                "fetch" -> "right";
                "left" -> "join";
                "right" -> "join";
                "join" -> "publish";
            }

            """, run.Output);
    }

    [Fact]
    public async Task graph_of_the_example_pipeline_draws_it()
    {
        var run = await CliRun.Of("graph", "orders-report", "--file", RepositoryRoot.File("config/pipelines.yaml"));

        Assert.Equal(0, run.ExitCode);
        Assert.StartsWith("flowchart TD\n", run.Output, StringComparison.Ordinal);
        Assert.Contains("s_build_2dreport --> s_publish", run.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task graph_of_an_unknown_pipeline_exits_1_with_a_did_you_mean()
    {
        var run = await CliRun.Of("graph", "dimond", "--file", Write("diamond.yaml", Diamond));

        Assert.Equal(1, run.ExitCode);
        Assert.Empty(run.Output);
        Assert.Equal("error: unknown pipeline 'dimond'; did you mean 'diamond'? (pipelines: diamond)\n", run.Error);
    }

    [Fact]
    public async Task graph_of_a_bad_file_exits_1_with_its_errors()
    {
        var path = Write("bad.yaml", "pipelines: {}\n");

        var run = await CliRun.Of("graph", "etl", "--file", path);

        Assert.Equal(1, run.ExitCode);
        Assert.Equal($"{path}:1:12: error: 'pipelines' is empty; define at least one pipeline\n", run.Error);
    }

    [Fact]
    public async Task graph_refuses_an_unknown_format()
    {
        var run = await CliRun.Of("graph", "diamond", "--file", Write("diamond.yaml", Diamond), "--format", "png");

        Assert.Equal(1, run.ExitCode);
        Assert.Contains("'png'", run.Error, StringComparison.Ordinal);
        Assert.Contains("mermaid", run.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task schema_prints_the_generated_json_schema()
    {
        var run = await CliRun.Of("schema");

        Assert.Equal(0, run.ExitCode);
        Assert.Equal(PipelineSchema.Generate(), run.Output);
        Assert.Equal(PipelineSchema.Id, (string?)System.Text.Json.Nodes.JsonNode.Parse(run.Output)!["$id"]);
    }

    public static TheoryData<string> Commands() => new(CommandNames);

    private static IEnumerable<string> CommandNames => PipelinesCli.CreateRootCommand().Subcommands.Select(c => c.Name);

    [Fact]
    public async Task help_lists_every_command()
    {
        var run = await CliRun.Of("--help");

        Assert.Equal(0, run.ExitCode);
        Assert.Contains("Usage:", run.Output, StringComparison.Ordinal);
        Assert.All(CommandNames, command => Assert.Contains($"  {command}", run.Output, StringComparison.Ordinal));
        Assert.Empty(run.Error);
    }

    [Theory]
    [MemberData(nameof(Commands))]
    public async Task help_is_printed_for_every_command(string command)
    {
        var run = await CliRun.Of(command, "--help");

        Assert.Equal(0, run.ExitCode);
        Assert.Contains("Usage:", run.Output, StringComparison.Ordinal);
        Assert.Contains($" {command}", run.Output, StringComparison.Ordinal);
        Assert.Contains("-h, --help", run.Output, StringComparison.Ordinal);
        Assert.Empty(run.Error);
    }

    private const string Runnable = """
        pipelines:
          orders:
            steps:
              - name: fetch
                handler: demo.fetch-orders
              - name: echo
                handler: demo.echo
                depends_on: [fetch]
          broken:
            steps:
              - name: boom
                handler: demo.fail
        """;

    [Fact]
    public async Task run_shows_each_step_its_log_and_outputs_and_exits_0_when_the_run_succeeds()
    {
        var path = Write("runnable.yaml", Runnable);

        var run = await CliRun.Of("run", "orders", "--file", path, "--payload", "{\"day\":\"2026-11-01\",\"orders\":3}", "--data", Path.Combine(_directory, "data"));

        Assert.Equal(0, run.ExitCode);
        Assert.Matches(@"\] fetch: succeeded\n", run.Output);
        Assert.Matches(@"\]   fetch \| fetched 3 orders for 2026-11-01\n", run.Output);
        Assert.Matches(@"\n  echo +succeeded +\{""day"":""2026-11-01"",""orders"":3\}\n", run.Output);
        Assert.EndsWith(" succeeded\n", run.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task run_of_a_failing_pipeline_names_the_failed_step_and_exits_1()
    {
        var path = Write("runnable.yaml", Runnable);

        var run = await CliRun.Of("run", "broken", "--file", path, "--payload", "{\"message\":\"no luck today\"}", "--data", Path.Combine(_directory, "data"));

        Assert.Equal(1, run.ExitCode);
        Assert.Contains("boom: failed", run.Output, StringComparison.Ordinal);
        Assert.Contains("no luck today", run.Output, StringComparison.Ordinal);
        Assert.EndsWith(" failed: step 'boom' failed\n", run.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task unknown_command_exits_1()
    {
        var run = await CliRun.Of("validat");

        Assert.Equal(1, run.ExitCode);
        Assert.Contains("validat", run.Error, StringComparison.Ordinal);
    }

    private string Write(string name, string content)
    {
        var path = Path.Combine(_directory, name);
        File.WriteAllText(path, content);
        return path;
    }
}
