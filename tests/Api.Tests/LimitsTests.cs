using System.Net;
using System.Text;
using Pipelines.Api.Tests.Infrastructure;

namespace Pipelines.Api.Tests;

public sealed class LimitsTests(ApiFactory factory) : IClassFixture<ApiFactory>
{
    private readonly HttpClient _http = factory.Http();

    [Fact]
    public async Task A_body_over_one_mebibyte_answers_413_before_it_is_read()
    {
        var body = $"{{\"pipeline\":\"echo\",\"payload\":{{\"name\":\"{new string('x', 1024 * 1024)}\"}}}}";

        var response = await _http.PostTextAsync("/api/v1/runs", body);

        await response.AssertProblemAsync(HttpStatusCode.RequestEntityTooLarge, "body");
    }

    [Fact]
    public async Task A_chunked_body_over_one_mebibyte_answers_413()
    {
        var bytes = Encoding.UTF8.GetBytes($"{{\"pipeline\":\"echo\",\"payload\":{{\"name\":\"{new string('x', 1024 * 1024)}\"}}}}");
        var content = new StreamContent(new UnknownLengthStream(bytes));
        content.Headers.ContentType = new("application/json");
        var request = new HttpRequestMessage(HttpMethod.Post, "/api/v1/runs") { Content = content };
        request.Headers.TransferEncodingChunked = true;

        var response = await _http.SendAsync(request);

        await response.AssertProblemAsync(HttpStatusCode.RequestEntityTooLarge, "body");
    }

    [Fact]
    public async Task A_chunked_body_under_the_limit_is_read()
    {
        var content = new StreamContent(new UnknownLengthStream(Encoding.UTF8.GetBytes("{\"pipeline\":\"echo\",\"payload\":{\"name\":\"small\"}}")));
        content.Headers.ContentType = new("application/json");
        var request = new HttpRequestMessage(HttpMethod.Post, "/api/v1/runs") { Content = content };
        request.Headers.TransferEncodingChunked = true;

        Assert.Equal(HttpStatusCode.Created, (await _http.SendAsync(request)).StatusCode);
    }

    [Fact]
    public async Task A_payload_nested_deeper_than_the_cap_answers_400_naming_it()
    {
        var nested = string.Concat(Enumerable.Repeat("{\"a\":", 40)) + "1" + new string('}', 40);

        var response = await _http.PostTextAsync("/api/v1/runs", $"{{\"pipeline\":\"echo\",\"payload\":{nested}}}");

        var problem = await response.AssertProblemAsync(HttpStatusCode.BadRequest, "payload");
        Assert.Contains("deeper than 32", problem.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_page_larger_than_the_cap_answers_400()
    {
        var problem = await (await _http.GetAsync("/api/v1/runs?limit=500")).AssertProblemAsync(HttpStatusCode.BadRequest, "limit");

        Assert.Contains("200", problem.Detail, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("/api/v1/runs?pipeline=%00", "pipeline")]
    [InlineData("/api/v1/runs?schedule=echo%2F%00nightly", "schedule")]
    [InlineData("/api/v1/runs?state=failed&cursor=%00", "cursor")]
    [InlineData("/api/v1/runs/statistics?pipeline=echo%00", "pipeline")]
    [InlineData("/api/v1/schedules?pipeline=%00", "pipeline")]
    [InlineData("/api/v1/pipelines/validate?var=A%3D%00", "var")]
    public async Task A_nul_character_in_a_query_parameter_answers_400_naming_the_parameter(string path, string parameter)
    {
        var response = await _http.SendAsync(new HttpRequestMessage(path.Contains("validate", StringComparison.Ordinal) ? HttpMethod.Post : HttpMethod.Get, path));

        var problem = await response.AssertProblemAsync(HttpStatusCode.BadRequest, parameter);
        Assert.Contains("NUL", problem.Detail, StringComparison.Ordinal);
    }

    /// <summary>A stream that does not say how long it is, so the client sends it chunked.</summary>
    private sealed class UnknownLengthStream(byte[] bytes) : MemoryStream(bytes)
    {
        public override bool CanSeek => false;

        public override long Length => throw new NotSupportedException();
    }
}
