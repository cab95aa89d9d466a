using System.Net;
using System.Net.Http.Json;
using Pipelines.Client;

namespace Pipelines.Api.Tests.Infrastructure;

public static class Problems
{
    /// <summary>Asserts an RFC 7807 answer with <paramref name="status"/> whose errors name <paramref name="field"/>; returns it.</summary>
    public static async Task<ApiProblem> AssertProblemAsync(this HttpResponseMessage response, HttpStatusCode status, string? field = null)
    {
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(status == response.StatusCode, $"expected {(int)status}, got {(int)response.StatusCode}: {body}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        Assert.DoesNotContain("   at ", body, StringComparison.Ordinal);
        var problem = System.Text.Json.JsonSerializer.Deserialize<ApiProblem>(body, PipelinesJson.Options)!;
        Assert.Equal((int)status, problem.Status);
        if (field is not null)
        {
            Assert.True(problem.Errors.Any(e => e.Field == field), $"no error names '{field}': {body}");
        }
        return problem;
    }

    public static Task<HttpResponseMessage> PostJsonAsync(this HttpClient http, string path, object body, string? idempotencyKey = null)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = JsonContent.Create(body) };
        if (idempotencyKey is not null)
        {
            request.Headers.Add("Idempotency-Key", idempotencyKey);
        }
        return http.SendAsync(request);
    }

    public static Task<HttpResponseMessage> PostTextAsync(this HttpClient http, string path, string body, string contentType = "application/json") =>
        http.PostAsync(path, new StringContent(body, System.Text.Encoding.UTF8, contentType));
}
