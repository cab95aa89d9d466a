using System.Net;
using System.Net.Http.Headers;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Pipelines.Api.Tests.Infrastructure;

namespace Pipelines.Api.Tests;

public sealed class SecurityTests(ApiFactory factory) : IClassFixture<ApiFactory>
{
    [Theory]
    [InlineData(null)]
    [InlineData("Bearer pk_not-a-key")]
    [InlineData("Basic YWRtaW46YWRtaW4=")]
    [InlineData("Bearer")]
    public async Task A_missing_or_wrong_key_answers_401_saying_only_that_a_key_is_needed(string? authorization)
    {
        var http = factory.Http(key: null);
        if (authorization is not null)
        {
            http.DefaultRequestHeaders.TryAddWithoutValidation("Authorization", authorization);
        }

        var response = await http.GetAsync("/api/v1/runs");

        var problem = await response.AssertProblemAsync(HttpStatusCode.Unauthorized, "Authorization");
        Assert.Equal("Bearer", response.Headers.WwwAuthenticate.Single().Scheme);
        Assert.Equal("Send a valid API key as 'Authorization: Bearer KEY'.", problem.Detail);
    }

    [Fact]
    public async Task An_unknown_route_answers_401_to_a_stranger_and_404_to_a_key_holder()
    {
        Assert.Equal(HttpStatusCode.Unauthorized, (await factory.Http(key: null).GetAsync("/api/v1/secret-admin")).StatusCode);
        await (await factory.Http().GetAsync("/api/v1/secret-admin")).AssertProblemAsync(HttpStatusCode.NotFound, "path");
        await (await factory.Http().DeleteAsync("/api/v1/runs")).AssertProblemAsync(HttpStatusCode.MethodNotAllowed, "method");
    }

    [Theory]
    [InlineData("/api/v1/secret-admin?follow=%00")]
    [InlineData("/api/v1/runs/1f8d680c-5939-b8d7-af7c-111de10a07ab/steps/second/attempts/%7B%7D/log?follow=%00")]
    public async Task A_path_no_endpoint_has_answers_404_whatever_its_query_holds(string path)
    {
        await (await factory.Http().GetAsync(path)).AssertProblemAsync(HttpStatusCode.NotFound, "path");
        await (await factory.Http(TestKeys.Writer).GetAsync(path)).AssertProblemAsync(HttpStatusCode.NotFound, "path");
    }

    [Theory]
    [InlineData(TestKeys.Reader, "POST", "/api/v1/runs", "runs:write")]
    [InlineData(TestKeys.Reader, "POST", "/api/v1/schedules", "schedules:write")]
    [InlineData(TestKeys.Writer, "GET", "/api/v1/runs", "runs:read")]
    [InlineData(TestKeys.Writer, "GET", "/api/v1/pipelines", "runs:read")]
    [InlineData(TestKeys.Scheduler, "POST", "/api/v1/runs", "runs:write")]
    [InlineData(TestKeys.Writer, "DELETE", "/api/v1/schedules/echo/nightly", "schedules:write")]
    public async Task A_key_without_the_scope_answers_403_naming_the_scope(string key, string method, string path, string scope)
    {
        var request = new HttpRequestMessage(new HttpMethod(method), path) { Content = new StringContent("{}", MediaTypeHeaderValue.Parse("application/json")) };

        var response = await factory.Http(key).SendAsync(request);

        var problem = await response.AssertProblemAsync(HttpStatusCode.Forbidden, "Authorization");
        Assert.Contains($"'{scope}'", problem.Detail, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("GET", "/api/v1/runs?pipeline=%00", null, null, 400)]
    [InlineData("GET", "/api/v1/runs?limit=huge", null, null, 400)]
    [InlineData("POST", "/api/v1/runs", "text/plain", "{\"pipeline\":\"echo\"}", 415)]
    [InlineData("POST", "/api/v1/runs", "application/json", "{\"pipeline\":", 400)]
    [InlineData("PUT", "/api/v1/schedules/echo/nightly", "text/plain", "cron: x", 415)]
    public async Task A_key_and_its_scope_are_checked_before_anything_else_in_the_request(string method, string path, string? contentType, string? body, int status)
    {
        HttpRequestMessage Request()
        {
            var request = new HttpRequestMessage(new HttpMethod(method), path);
            if (body is not null)
            {
                request.Content = new StringContent(body, MediaTypeHeaderValue.Parse(contentType!));
            }
            return request;
        }
        var wrongScope = method == "GET" ? TestKeys.Writer : TestKeys.Reader;

        await (await factory.Http(key: null).SendAsync(Request())).AssertProblemAsync(HttpStatusCode.Unauthorized, "Authorization");
        await (await factory.Http(wrongScope).SendAsync(Request())).AssertProblemAsync(HttpStatusCode.Forbidden, "Authorization");
        await (await factory.Http().SendAsync(Request())).AssertProblemAsync((HttpStatusCode)status);
    }

    [Theory]
    [InlineData(TestKeys.Reader, "/api/v1/runs")]
    [InlineData(TestKeys.Reader, "/api/v1/schedules")]
    [InlineData(TestKeys.Scheduler, "/api/v1/schedules")]
    [InlineData(TestKeys.Admin, "/api/v1/pipelines")]
    public async Task A_key_with_the_scope_is_let_in(string key, string path)
    {
        Assert.Equal(HttpStatusCode.OK, (await factory.Http(key).GetAsync(path)).StatusCode);
    }

    [Theory]
    [InlineData("/healthz")]
    [InlineData("/readyz")]
    [InlineData("/openapi/v1.json")]
    public async Task Health_and_the_api_description_need_no_key(string path)
    {
        Assert.Equal(HttpStatusCode.OK, (await factory.Http(key: null).GetAsync(path)).StatusCode);
    }

    [Fact]
    public async Task A_key_past_its_rate_limit_gets_429_with_retry_after_and_other_keys_are_not_affected()
    {
        var limited = factory.Http(TestKeys.Limited);
        for (var i = 0; i < TestKeys.LimitedPerMinute; i++)
        {
            Assert.Equal(HttpStatusCode.OK, (await limited.GetAsync("/api/v1/pipelines")).StatusCode);
        }

        var refused = await limited.GetAsync("/api/v1/pipelines");

        await refused.AssertProblemAsync(HttpStatusCode.TooManyRequests, "Authorization");
        Assert.InRange(refused.Headers.RetryAfter!.Delta!.Value, TimeSpan.FromSeconds(1), TimeSpan.FromMinutes(1));
        Assert.Equal(HttpStatusCode.OK, (await factory.Http(TestKeys.Reader).GetAsync("/api/v1/pipelines")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await limited.GetAsync("/healthz")).StatusCode);
    }
}

/// <summary>The embedded default: no key configured. A test header stands in for a remote client's address.</summary>
public sealed class OpenFactory : ApiFactory
{
    public const string RemoteHeader = "X-Test-Remote-Address";

    protected override void Configure(IDictionary<string, string?> settings)
    {
        foreach (var key in settings.Keys.Where(k => k.StartsWith("Pipelines:Api:Keys", StringComparison.Ordinal)).ToList())
        {
            settings.Remove(key);
        }
    }

    protected override void ConfigureServices(IServiceCollection services) =>
        services.AddSingleton<IStartupFilter, RemoteAddressFilter>();

    private sealed class RemoteAddressFilter : IStartupFilter
    {
        public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
        {
            app.Use((context, nextMiddleware) =>
            {
                if (context.Request.Headers.TryGetValue(RemoteHeader, out var address))
                {
                    context.Connection.RemoteIpAddress = IPAddress.Parse(address.ToString());
                }
                return nextMiddleware(context);
            });
            next(app);
        };
    }
}

public sealed class OpenModeTests(OpenFactory factory) : IClassFixture<OpenFactory>
{
    [Fact]
    public async Task Without_configured_keys_a_loopback_client_needs_no_key()
    {
        var http = factory.Http(key: null);
        http.DefaultRequestHeaders.Add(OpenFactory.RemoteHeader, "127.0.0.1");

        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/api/v1/runs")).StatusCode);
    }

    [Fact]
    public async Task Without_configured_keys_a_remote_client_is_refused_even_with_a_key()
    {
        var http = factory.Http(key: TestKeys.Admin);
        http.DefaultRequestHeaders.Add(OpenFactory.RemoteHeader, "10.1.2.3");

        var problem = await (await http.GetAsync("/api/v1/runs")).AssertProblemAsync(HttpStatusCode.Unauthorized);

        Assert.Contains("own machine", problem.Detail, StringComparison.Ordinal);
    }
}
