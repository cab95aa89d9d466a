using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Options;
using Pipelines.Api.Hosting;
using Pipelines.Api.Security;

namespace Pipelines.Api.Tests;

public sealed class HostTests
{
    private static PipelinesRoles Roles(string? value) =>
        PipelinesRolesConfiguration.Read(new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?> { ["Pipelines:Roles"] = value }).Build());

    [Theory]
    [InlineData(null, PipelinesRoles.All)]
    [InlineData("all", PipelinesRoles.All)]
    [InlineData("api", PipelinesRoles.Api)]
    [InlineData("API, Scheduler", PipelinesRoles.Api | PipelinesRoles.Scheduler)]
    [InlineData("coordinator,worker", PipelinesRoles.Coordinator | PipelinesRoles.Worker)]
    [InlineData("containers", PipelinesRoles.Containers | PipelinesRoles.Worker)]
    public void Roles_are_read_from_a_comma_separated_setting(string? value, PipelinesRoles expected)
    {
        Assert.Equal(expected, Roles(value));
    }

    [Fact]
    public void An_unknown_role_stops_the_start_naming_it_and_the_valid_ones()
    {
        var error = Assert.Throws<OptionsValidationException>(() => Roles("api,sheduler,2"));

        Assert.Contains("'sheduler', '2'", error.Message, StringComparison.Ordinal);
        Assert.Contains("api, coordinator, worker, containers, scheduler", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Roles_may_be_given_as_a_list()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Pipelines:Roles:0"] = "api",
            ["Pipelines:Roles:1"] = "coordinator",
        }).Build();

        Assert.Equal(PipelinesRoles.Api | PipelinesRoles.Coordinator, PipelinesRolesConfiguration.Read(configuration));
    }

    [Theory]
    [InlineData("http://localhost:5080", true)]
    [InlineData("http://127.0.0.1:0", true)]
    [InlineData("http://[::1]:5080", true)]
    [InlineData("http://0.0.0.0:5080", false)]
    [InlineData("http://[::]:5080", false)]
    [InlineData("http://*:5080", false)]
    [InlineData("http://+:5080", false)]
    [InlineData("http://pipelines.internal:80", false)]
    public void Only_loopback_addresses_count_as_loopback(string address, bool loopback)
    {
        Assert.Equal(loopback, StartupReport.IsLoopback(address));
    }

    [Fact]
    public void Every_bad_api_setting_is_reported_at_once_without_echoing_a_hash()
    {
        var options = new ApiOptions
        {
            RequestsPerMinute = 0,
            MaxPageSize = 10,
            DefaultPageSize = 50,
            Keys =
            [
                new ApiKeyOptions { Name = "ci", Hash = "abc123", Scopes = ["runs:read"] },
                new ApiKeyOptions { Name = "ci", Hash = ApiKeys.HashOf("k"), Scopes = ["runs:delete"] },
                new ApiKeyOptions { Name = "", Hash = ApiKeys.HashOf("k"), Scopes = [] },
            ],
        };

        var result = new ApiOptionsValidator().Validate(null, options);

        var failures = result.Failures!.ToList();
        Assert.Contains(failures, f => f.StartsWith("Pipelines:Api:RequestsPerMinute is 0", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.StartsWith("Pipelines:Api:DefaultPageSize is 50", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.StartsWith("Pipelines:Api:Keys:0:Hash is 6 characters long", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.StartsWith("Pipelines:Api:Keys:1:Name is 'ci'", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.StartsWith("Pipelines:Api:Keys:1:Scopes is 'runs:delete'", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.StartsWith("Pipelines:Api:Keys:2:Hash is the hash of another key", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.StartsWith("Pipelines:Api:Keys:2:Scopes is empty", StringComparison.Ordinal));
        Assert.DoesNotContain(failures, f => f.Contains(ApiKeys.HashOf("k"), StringComparison.Ordinal));
    }

    [Fact]
    public void A_key_hash_is_the_hex_sha256_of_the_key_and_may_be_written_with_its_algorithm()
    {
        Assert.Equal("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", ApiKeys.HashOf("abc"));
        Assert.Equal(ApiKeys.HashOf("abc"), new ApiKeyOptions { Hash = "sha256:BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD" }.NormalizedHash);
        Assert.StartsWith("pk_", ApiKeys.NewKey(), StringComparison.Ordinal);
        Assert.NotEqual(ApiKeys.NewKey(), ApiKeys.NewKey());
    }
}
