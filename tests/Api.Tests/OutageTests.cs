using System.Net;
using System.Net.Http.Json;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using Pipelines.Api.Tests.Infrastructure;
using Pipelines.Client;

namespace Pipelines.Api.Tests;

/// <summary>The API role alone, with its broker on a closed port: the bus never connects.</summary>
public sealed class BrokerDownFactory : ApiFactory
{
    protected override void Configure(IDictionary<string, string?> settings)
    {
        settings["Pipelines:Roles"] = "api";
        settings["Pipelines:Transport"] = "RabbitMq";
        settings["Pipelines:RabbitMq"] = "amqp://guest:guest@127.0.0.1:1/";
        settings["Pipelines:Api:BrokerTimeout"] = "00:00:01";
    }

    protected override void ConfigureServices(IServiceCollection services) =>
        services.Configure<MassTransitHostOptions>(o => o.WaitUntilStarted = false);
}

/// <summary>The API role alone, with its PostgreSQL database on a closed port.</summary>
public sealed class DatabaseDownFactory : ApiFactory
{
    protected override void Configure(IDictionary<string, string?> settings)
    {
        settings["Pipelines:Roles"] = "api";
        settings["Pipelines:Database:Provider"] = "PostgreSql";
        settings["Pipelines:Database:ConnectionString"] = "Host=127.0.0.1;Port=1;Username=pipelines;Database=pipelines;Timeout=2";
        settings["Pipelines:Database:Migrate"] = "false";
    }
}

public sealed class BrokerOutageTests(BrokerDownFactory factory) : IClassFixture<BrokerDownFactory>
{
    [Fact]
    public async Task Starting_a_run_while_the_broker_is_down_answers_503_with_retry_after()
    {
        var response = await factory.Http().PostAsJsonAsync("/api/v1/runs", new { pipeline = "echo", payload = new { name = "ada" } });

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.NotNull(response.Headers.RetryAfter);
        var problem = await response.Content.ReadFromJsonAsync<ApiProblem>(PipelinesJson.Options);
        Assert.Equal(503, problem!.Status);
        Assert.Contains("broker", problem.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Readiness_fails_while_the_broker_is_down_and_liveness_holds()
    {
        var http = factory.Http(key: null);

        Assert.Equal(HttpStatusCode.ServiceUnavailable, (await http.GetAsync("/readyz")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/healthz")).StatusCode);
    }
}

public sealed class DatabaseOutageTests(DatabaseDownFactory factory) : IClassFixture<DatabaseDownFactory>
{
    [Fact]
    public async Task Starting_a_run_while_the_database_is_down_answers_503()
    {
        var response = await factory.Http().PostAsJsonAsync("/api/v1/runs", new { pipeline = "echo", payload = new { name = "ada" } });

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.NotNull(response.Headers.RetryAfter);
        var body = await response.Content.ReadAsStringAsync();
        Assert.DoesNotContain("   at ", body, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Reading_runs_and_schedules_while_the_database_is_down_answers_503()
    {
        var http = factory.Http();

        Assert.Equal(HttpStatusCode.ServiceUnavailable, (await http.GetAsync("/api/v1/runs")).StatusCode);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, (await http.GetAsync("/api/v1/schedules")).StatusCode);
    }

    [Fact]
    public async Task Readiness_fails_while_the_database_is_down()
    {
        var response = await factory.Http(key: null).GetAsync("/readyz");

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Contains("\"database\":\"unhealthy\"", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }
}
