using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Pipelines.Core.Execution;
using Pipelines.Workers.Containers;

// In the DI namespace, as Microsoft's own Add… extensions are, so a host finds it without a using.
namespace Microsoft.Extensions.DependencyInjection;

public static class ContainerStepsServiceCollectionExtensions
{
    /// <summary>
    /// Lets this worker run container steps: registers <see cref="ContainerStepExecutor"/> as an
    /// <see cref="IStepExecutor"/>, <see cref="OrphanReaper"/> as a hosted service that removes
    /// this worker's leftover containers at start-up, and <see cref="NetworkPool"/> as a hosted service
    /// (it does nothing unless <c>NetworkPool:Size</c> is set). Settings bind from
    /// <c>Pipelines:Containers</c>, then <paramref name="configure"/> applies; they are validated at
    /// start. Calling it again is harmless.
    /// </summary>
    public static IServiceCollection AddContainerSteps(this IServiceCollection services, Action<ContainerOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        var options = services.AddOptions<ContainerOptions>().BindConfiguration(ContainerOptions.Section).ValidateOnStart();
        if (configure is not null)
        {
            options.Configure(configure);
        }
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<ContainerOptions>, ContainerOptionsValidator>());
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton<ContainerEngine>();
        services.TryAddSingleton<ContainerStepExecutor>();
        services.TryAddSingleton<OrphanReaper>();
        services.TryAddSingleton<NetworkPool>();
        if (!services.Any(d => d.ServiceType == typeof(IStepExecutor) && d.ImplementationFactory?.Method.DeclaringType == typeof(ContainerStepsServiceCollectionExtensions)))
        {
            services.AddSingleton<IStepExecutor>(ResolveExecutor);
            services.AddHostedService(provider => provider.GetRequiredService<OrphanReaper>());
            // After the reaper, which removes the holders an earlier process of this worker left.
            services.AddHostedService(provider => provider.GetRequiredService<NetworkPool>());
        }
        return services;
    }

    private static ContainerStepExecutor ResolveExecutor(IServiceProvider provider) => provider.GetRequiredService<ContainerStepExecutor>();
}
