using System.Net;
using System.Text;
using System.Text.Json;
using CsCheck;
using Pipelines.Api.Tests.Infrastructure;
using Pipelines.Client;

namespace Pipelines.Api.Tests;

/// <summary>
/// Malformed JSON, wrong types, unknown fields, huge and deeply nested bodies, at every endpoint that
/// reads a body: the answer is a 2xx or a 4xx problem naming a field — never a 500.
/// </summary>
public sealed class FuzzTests(ApiFactory factory) : IClassFixture<ApiFactory>
{
    private static readonly string[] Keys =
        ["pipeline", "payload", "name", "count", "cron", "timezone", "misfire", "overlap", "enabled", "start_at", "end_at", "sleep_ms", "pipelines", "steps"];

    private static readonly Gen<string> Leaf = Gen.OneOf(
        Gen.Const("null"), Gen.Const("true"), Gen.Const("false"), Gen.Const("1e999"), Gen.Const("-0"), Gen.Const("\"\\ud800\""),
        Gen.Const("\"echo\""), Gen.Const("\"0 * * * *\""), Gen.Const("\"2026-01-01T00:00:00Z\""), Gen.Const("\"fire_once\""),
        Gen.Int.Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)),
        Gen.Double.Select(d => JsonSerializer.Serialize(double.IsFinite(d) ? d : 0)),
        Gen.String[0, 20].Select(s => JsonSerializer.Serialize(s)));

    private static Gen<string> ObjectOf(Gen<string> values) =>
        Gen.Select(Gen.Frequency((4, Gen.OneOf(Keys)), (1, Gen.String[0, 8])), values).Array[0, 6]
            .Select(pairs => "{" + string.Join(",", pairs.Select(p => $"{JsonSerializer.Serialize(p.Item1)}:{p.Item2}")) + "}");

    private static readonly Gen<string> Value = Gen.Recursive<string>((depth, self) => depth >= 4
        ? Leaf
        : Gen.Frequency((4, Leaf), (1, self.Array[0, 4].Select(items => "[" + string.Join(",", items) + "]")), (2, ObjectOf(self))));

    private static readonly Gen<string> Body = Gen.Frequency(
        (5, Value),
        (6, ObjectOf(Value)),
        (2, ObjectOf(Value).Select(Gen.Int[0, 100], (json, cut) => json[..(json.Length * cut / 100)])),
        (1, Gen.Int[33, 400].Select(depth => $"{{\"pipeline\":\"echo\",\"payload\":{string.Concat(Enumerable.Repeat("{\"a\":", depth))}1{new string('}', depth)}}}")),
        (1, Gen.Int[33, 400].Select(depth => new string('[', depth) + new string(']', depth))),
        (1, Gen.Byte.Array[0, 64].Select(bytes => Encoding.Latin1.GetString(bytes))),
        (1, Gen.Int[1, 2].Select(mib => $"{{\"pipeline\":\"echo\",\"payload\":{{\"name\":\"{new string('x', mib * 1024 * 1024)}\"}}}}")));

    [Fact]
    public async Task Any_body_gets_a_success_or_a_4xx_problem_naming_a_field_never_a_500()
    {
        var client = factory.Client();
        var failed = await client.WaitForRunAsync((await client.StartRunAsync("flaky", new { orders = "many" })).Id);
        var targets = new (HttpMethod Method, string Path)[]
        {
            (HttpMethod.Post, "/api/v1/runs"),
            (HttpMethod.Post, "/api/v1/schedules"),
            (HttpMethod.Put, "/api/v1/schedules/echo/fuzz"),
            (HttpMethod.Post, $"/api/v1/runs/{failed.Id}/retry"),
            (HttpMethod.Post, "/api/v1/pipelines/validate"),
        };
        var http = factory.Http();

        await Gen.Select(Gen.Int[0, targets.Length - 1], Body).SampleAsync(async (target, body) =>
        {
            var (method, path) = targets[target];
            using var request = new HttpRequestMessage(method, path) { Content = new StringContent(body, Encoding.UTF8, "application/json") };
            using var response = await http.SendAsync(request);
            var status = (int)response.StatusCode;
            var text = await response.Content.ReadAsStringAsync();
            Assert.True(status < 500, $"{method} {path} answered {status}: {text}");
            if (status >= 400)
            {
                Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
                var problem = JsonSerializer.Deserialize<ApiProblem>(text, PipelinesJson.Options)!;
                Assert.Equal(status, problem.Status);
                Assert.NotEmpty(problem.Errors);
                Assert.DoesNotContain("   at ", text, StringComparison.Ordinal);
            }
        }, iter: 400, threads: 2, print: t => $"{targets[t.Item1].Method} {targets[t.Item1].Path} {t.Item2[..Math.Min(300, t.Item2.Length)]}");
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/healthz")).StatusCode);
    }
}
