using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Pipelines.Core.Execution;
using Pipelines.Workers.Containers;

namespace Pipelines.Workers.Tests.Containers;

public sealed class ContainerStepsRegistrationTests
{
    [Fact]
    public void adding_container_steps_twice_registers_one_executor_one_reaper_and_one_network_pool()
    {
        var services = new ServiceCollection().AddLogging().AddSingleton<IConfiguration>(new ConfigurationBuilder().Build());
        services.AddContainerSteps(o => o.WorkerId = "worker-a").AddContainerSteps();
        using var provider = services.BuildServiceProvider();

        var executor = Assert.Single(provider.GetServices<IStepExecutor>());
        Assert.Same(provider.GetRequiredService<ContainerStepExecutor>(), executor);
        // The reaper first: it removes the namespace holders an earlier process left before the pool starts new ones.
        Assert.Equal([provider.GetRequiredService<OrphanReaper>(), provider.GetRequiredService<NetworkPool>()], provider.GetServices<IHostedService>());
        Assert.Equal("worker-a", provider.GetRequiredService<ContainerEngine>().Options.WorkerId);
    }

    [Fact]
    public void the_executor_takes_steps_with_an_image_or_a_build_and_leaves_handlers()
    {
        var steps = TestSteps.Load("""
            pipelines:
              p:
                steps:
                  - { name: image, image: alpine }
                  - { name: build, build: { context: . } }
                  - { name: handler, handler: demo.summarise }
            """);
        using var engine = new ContainerEngine(Options.Create(new ContainerOptions()));
        using var executor = new ContainerStepExecutor(engine, TimeProvider.System);

        Assert.Equal([true, true, false], steps.Select(executor.CanExecute));
    }

    [Fact]
    public void every_bad_setting_is_reported_with_its_name_and_value()
    {
        var result = new ContainerOptionsValidator().Validate(null, new ContainerOptions
        {
            DockerEndpoint = "ftp://engine",
            MaxConcurrentContainers = 0,
            DefaultMemory = "lots",
            User = "0:0",
            AllowedHostPaths = ["relative/path"],
            NetworkPool = new NetworkPoolOptions { Size = 65, Image = " " },
        });

        Assert.Equal(
        [
            "Pipelines:Containers:DockerEndpoint = 'ftp://engine': must be a unix://, tcp://, http(s):// or npipe:// address",
            "Pipelines:Containers:MaxConcurrentContainers = '0': must be at least 1",
            "Pipelines:Containers:DefaultMemory = 'lots': must be an amount of memory such as 512m, at least 6m (Docker's minimum)",
            "Pipelines:Containers:User = '0:0': must not be root: steps run untrusted code",
            "Pipelines:Containers:AllowedHostPaths:0 = 'relative/path': must be an absolute path, optionally followed by :ro",
            "Pipelines:Containers:NetworkPool:Size = '65': must be between 0 (off) and 64",
            "Pipelines:Containers:NetworkPool:Image = ' ': must name an image when the pool is on",
        ], result.Failures);
    }
}
