using System.Net;
using System.Text.Json.Nodes;
using Pipelines.Api.Tests.Infrastructure;

namespace Pipelines.Api.Tests;

public sealed class OpenApiTests(ApiFactory factory) : IClassFixture<ApiFactory>
{
    [Fact]
    public async Task The_openapi_document_describes_every_endpoint_and_the_bearer_key()
    {
        var document = JsonNode.Parse(await factory.Http(key: null).GetStringAsync("/openapi/v1.json"))!;

        var paths = document["paths"]!.AsObject().Select(p => p.Key).ToHashSet();
        Assert.Superset(new HashSet<string>
        {
            "/api/v1/pipelines", "/api/v1/pipelines/{name}", "/api/v1/pipelines/validate",
            "/api/v1/runs", "/api/v1/runs/statistics", "/api/v1/runs/{runId}", "/api/v1/runs/{runId}/cancel", "/api/v1/runs/{runId}/retry",
            "/api/v1/runs/{runId}/steps/{step}/attempts/{attempt}/log",
            "/api/v1/schedules", "/api/v1/schedules/{pipeline}/{name}", "/api/v1/schedules/{pipeline}/{name}/pause", "/api/v1/schedules/{pipeline}/{name}/resume",
        }, paths);
        Assert.Equal("bearer", document["components"]!["securitySchemes"]!["ApiKey"]!["scheme"]!.GetValue<string>());
        Assert.NotNull(document["components"]!["schemas"]!["Run"]!["properties"]!["steps"]);
        Assert.Equal(["application/json"], document["paths"]!["/api/v1/runs"]!["post"]!["requestBody"]!["content"]!.AsObject().Select(c => c.Key));
        Assert.Contains("application/yaml", document["paths"]!["/api/v1/pipelines/validate"]!["post"]!["requestBody"]!["content"]!.AsObject().Select(c => c.Key));
    }

    [Fact]
    public async Task The_reference_page_is_served()
    {
        var http = factory.Http(key: null);

        var response = await http.GetAsync("/scalar/v1");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Contains("<html", await response.Content.ReadAsStringAsync(), StringComparison.OrdinalIgnoreCase);
    }
}
