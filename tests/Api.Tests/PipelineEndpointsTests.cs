using System.Net;
using System.Net.Http.Json;
using Pipelines.Api.Tests.Infrastructure;
using Pipelines.Client;

namespace Pipelines.Api.Tests;

public sealed class PipelineEndpointsTests(ApiFactory factory) : IClassFixture<ApiFactory>
{
    private readonly PipelinesClient _client = factory.Client();
    private readonly HttpClient _http = factory.Http();

    [Fact]
    public async Task Pipelines_are_listed_by_name_with_their_parameters()
    {
        var pipelines = await _client.ListPipelinesAsync();

        Assert.Equal(["chatty", "echo", "flaky", "private-image", "sleepy"], pipelines.Select(p => p.Name));
        var echo = pipelines.Single(p => p.Name == "echo");
        Assert.Equal(["count", "name"], echo.Parameters);
        Assert.Equal(1, echo.Steps);
    }

    [Fact]
    public async Task A_pipeline_shows_its_steps_and_its_graph_as_mermaid_and_as_nodes_and_edges()
    {
        var flaky = await _client.GetPipelineAsync("flaky");

        Assert.Equal(["prepare", "fetch"], flaky.Steps.Select(s => s.Name));
        var fetch = flaky.Steps[1];
        Assert.Equal("handler", fetch.Kind);
        Assert.Equal("demo.fetch-orders", fetch.Handler);
        Assert.Equal(["prepare"], fetch.DependsOn);
        Assert.Equal(1, fetch.Retry!.Attempts);
        Assert.StartsWith("flowchart TD", flaky.Graph.Mermaid, StringComparison.Ordinal);
        Assert.Contains("s_prepare --> s_fetch", flaky.Graph.Mermaid, StringComparison.Ordinal);
        Assert.Equal([new GraphEdge("prepare", "fetch")], flaky.Graph.Edges);
        Assert.Equal([0, 1], flaky.Graph.Nodes.Select(n => n.Level));
        var echo = await _client.GetPipelineAsync("echo");
        Assert.Equal("integer", echo.Parameters["count"].Type);
        Assert.True(echo.Parameters["name"].Required);
        Assert.Equal(1, echo.Parameters["count"].Default!.GetValue<int>());
    }

    [Fact]
    public async Task Secrets_are_never_returned_a_registry_password_shows_as_stars()
    {
        var response = await _http.GetAsync("/api/v1/pipelines/private-image");
        var text = await response.Content.ReadAsStringAsync();
        var pipeline = await _client.GetPipelineAsync("private-image");

        var pull = pipeline.Steps.Single(s => s.Name == "pull");
        Assert.Equal("***", pull.Registry!.Password);
        Assert.Equal("bot", pull.Registry.Username);
        Assert.Equal("${secret:API_TOKEN}", pull.Env!["TOKEN"]);
        Assert.DoesNotContain(ApiFactory.RegistrySecret, text, StringComparison.Ordinal);
        Assert.DoesNotContain("REGISTRY_PASSWORD", text, StringComparison.Ordinal);
        Assert.Equal("nightly", Assert.Single(pipeline.Schedules).Name);
    }

    [Fact]
    public async Task An_unknown_pipeline_answers_404_with_a_suggestion()
    {
        var problem = await (await _http.GetAsync("/api/v1/pipelines/flakey")).AssertProblemAsync(HttpStatusCode.NotFound, "name");

        Assert.Contains("did you mean 'flaky'", problem.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_valid_posted_definition_names_its_pipelines()
    {
        var yaml = await File.ReadAllTextAsync(Path.Combine(AppContext.BaseDirectory, "pipelines.yaml"));

        var result = await _client.ValidateDefinitionAsync(yaml);

        Assert.True(result.Valid);
        Assert.Equal(["chatty", "echo", "flaky", "private-image", "sleepy"], result.Pipelines);
    }

    [Fact]
    public async Task An_invalid_posted_definition_answers_422_with_each_error_at_its_line_and_column()
    {
        const string yaml = "pipelines:\n  etl:\n    steps:\n      - name: load\n        handler: x\n        depends_on: [extract]\n";

        var response = await _http.PostTextAsync("/api/v1/pipelines/validate", yaml, "application/yaml");

        var problem = await response.AssertProblemAsync(HttpStatusCode.UnprocessableEntity, "body");
        var error = Assert.Single(problem.Errors);
        Assert.Equal(6, error.Line);
        Assert.Equal(22, error.Column);
        Assert.Contains("extract", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_posted_definition_takes_variables_from_the_request_never_from_the_server()
    {
        const string yaml = "pipelines:\n  etl:\n    steps:\n      - name: load\n        image: ${IMAGE}\n";

        var without = await _http.PostTextAsync("/api/v1/pipelines/validate", yaml, "text/plain");
        var with = await _http.PostTextAsync("/api/v1/pipelines/validate?var=IMAGE=busybox:1.36", yaml, "text/plain");
        var home = await _http.PostTextAsync("/api/v1/pipelines/validate", yaml.Replace("${IMAGE}", "${HOME}", StringComparison.Ordinal), "text/plain");

        await without.AssertProblemAsync(HttpStatusCode.UnprocessableEntity, "body");
        Assert.Equal(HttpStatusCode.OK, with.StatusCode);
        await home.AssertProblemAsync(HttpStatusCode.UnprocessableEntity, "body");
        await (await _http.PostTextAsync("/api/v1/pipelines/validate?var=IMAGE", yaml, "text/plain")).AssertProblemAsync(HttpStatusCode.BadRequest, "var");
    }

    [Fact]
    public async Task A_definition_posted_as_json_or_with_any_content_type_is_read()
    {
        const string json = "{\"pipelines\": {\"etl\": {\"steps\": [{\"name\": \"load\", \"handler\": \"x\"}]}}}";

        var asJson = await _http.PostTextAsync("/api/v1/pipelines/validate", json, "application/json");
        var asForm = await _http.PostTextAsync("/api/v1/pipelines/validate", json, "application/x-www-form-urlencoded");

        Assert.Equal(["etl"], (await asJson.Content.ReadFromJsonAsync<DefinitionValidation>(PipelinesJson.Options))!.Pipelines);
        Assert.Equal(HttpStatusCode.OK, asForm.StatusCode);
    }
}
