using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Pipelines.Core.Coordination;
using Pipelines.Core.Hosting;

namespace Pipelines.Core.Tests.Hosting;

public sealed class CoordinatorSettingsTests
{
    [Fact]
    public void The_coordinators_settings_are_read_from_the_Pipelines_Coordinator_section_and_code_has_the_last_word()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Pipelines:Coordinator:StalledChainGrace"] = "00:05:00",
            ["Pipelines:Coordinator:PendingGrace"] = "00:00:30",
        }).Build();
        var services = new ServiceCollection().AddSingleton<IConfiguration>(configuration);

        new PipelinesBuilder(services, new PipelinesOptions()).AddCoordinator(o => o.PendingGrace = TimeSpan.FromSeconds(3));
        var options = services.BuildServiceProvider().GetRequiredService<IOptions<CoordinatorOptions>>().Value;

        Assert.Equal(TimeSpan.FromMinutes(5), options.StalledChainGrace);
        Assert.Equal(TimeSpan.FromSeconds(3), options.PendingGrace);
        Assert.Equal(TimeSpan.FromSeconds(2), options.SweepInterval);
    }
}
