using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Pipelines.Core.Definitions;
using Pipelines.Tests;

namespace Pipelines.Core.Tests.Definitions;

public sealed class PipelineSchemaTests
{
    private const string CommittedSchema = "docs/pipelines.schema.json";

    private static readonly JsonObject Schema = JsonNode.Parse(PipelineSchema.Generate())!.AsObject();

    private static JsonObject Pipeline => Schema["properties"]!["pipelines"]!["additionalProperties"]!.AsObject();

    private static JsonObject Step => Pipeline["properties"]!["steps"]!["items"]!.AsObject();

    [Fact]
    public void committed_schema_is_what_the_generator_produces()
    {
        var committed = File.ReadAllText(RepositoryRoot.File(CommittedSchema)).ReplaceLineEndings("\n");

        Assert.True(committed == PipelineSchema.Generate(),
            $"{CommittedSchema} is out of date; regenerate it with: dotnet run --project src/Cli -- schema > {CommittedSchema}");
    }

    [Fact]
    public void schema_is_a_draft_2020_12_document_requiring_pipelines()
    {
        Assert.Equal("https://json-schema.org/draft/2020-12/schema", (string?)Schema["$schema"]);
        Assert.Equal(PipelineSchema.Id, (string?)Schema["$id"]);
        Assert.Equal(["pipelines"], Schema["required"]!.AsArray().Select(k => (string?)k));
        Assert.Equal(1, (int?)Schema["properties"]!["pipelines"]!["minProperties"]);
    }

    [Fact]
    public void step_schema_lists_the_documented_keys_and_refuses_others()
    {
        var keys = Step["properties"]!.AsObject().Select(p => p.Key).ToHashSet();

        Assert.Superset(
            new HashSet<string> { "name", "description", "depends_on", "handler", "image", "tag", "command", "entrypoint", "env", "volumes", "workdir", "registry", "sidecars", "resources", "network", "retry", "timeout", "pool", "skip_in_env" },
            keys);
        Assert.False((bool)Step["additionalProperties"]!);
        Assert.Equal(["name"], Step["required"]!.AsArray().Select(k => (string?)k));
        Assert.Equal(1, (int?)Pipeline["properties"]!["steps"]!["minItems"]);
    }

    [Fact]
    public void optional_keys_may_be_left_empty_as_the_loader_allows()
    {
        var retry = Step["properties"]!["retry"]!["properties"]!;

        Assert.Contains("null", retry["attempts"]!["type"]!.AsArray().Select(t => (string?)t));
        Assert.Contains(null, retry["backoff"]!["enum"]!.AsArray());
        Assert.Equal("string", (string?)Step["properties"]!["name"]!["type"]);
    }

    [Fact]
    public void schema_key_is_allowed_at_the_top_only()
    {
        Assert.Contains("string", Schema["properties"]!["$schema"]!["type"]!.AsArray().Select(t => (string?)t));
        Assert.Null(Step["properties"]!["$schema"]);
    }

    [Fact]
    public void extension_keys_are_allowed_in_every_mapping_of_fixed_keys_as_the_loader_skips_them()
    {
        var closed = Descendants(Schema).Where(o => o["additionalProperties"] is JsonValue value && !value.GetValue<bool>()).ToList();

        Assert.NotEmpty(closed);
        Assert.All(closed, o => Assert.NotNull(o["patternProperties"]?["^x-"]));
    }

    private static IEnumerable<JsonObject> Descendants(JsonNode? node) => node switch
    {
        JsonObject obj => obj.SelectMany(p => Descendants(p.Value)).Prepend(obj),
        JsonArray array => array.SelectMany(Descendants),
        _ => [],
    };

    [Theory]
    [InlineData("30s", true)]
    [InlineData("1h30m", true)]
    [InlineData("${STEP_TIMEOUT:-30s}", true)]
    [InlineData("10 minutes", false)]
    [InlineData("1.5s", false)]
    public void duration_pattern_accepts_what_the_loader_accepts(string value, bool accepted)
    {
        var pattern = (string)Step["properties"]!["timeout"]!["pattern"]!;

        Assert.Equal(accepted, Regex.IsMatch(value, pattern));
    }
}
