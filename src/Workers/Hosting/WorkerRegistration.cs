using System.Text.Json.Nodes;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Pipelines.Core.Contracts;
using Pipelines.Core.Execution;
using Pipelines.Core.Hosting;
using Pipelines.Core.Persistence;
using Pipelines.Core.Planning;
using Pipelines.Core.Runs;
using Pipelines.Workers.Containers;
using Pipelines.Workers.Handlers;
using Pipelines.Workers.Steps;

namespace Pipelines.Workers.Hosting;

public static class WorkerRegistration
{
    /// <summary>
    /// Hosts step activities: one queue per registered handler, one per configured pool, and the
    /// container queue when a container executor is registered. Settings: <c>Pipelines:Worker</c>.
    /// </summary>
    public static PipelinesBuilder AddWorker(this PipelinesBuilder builder, Action<WorkerOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var services = builder.Services;
        services.AddOptions<WorkerOptions>().BindConfiguration($"{PipelinesOptions.Section}:Worker").Configure(o => configure?.Invoke(o));
        services.TryAddSingleton(sp =>
        {
            var worker = sp.GetRequiredService<IOptions<WorkerOptions>>().Value;
            return new StepLeases(sp.GetRequiredService<RunStore>(), sp.GetRequiredService<GroupCommitWriter>(), worker.InstanceId, worker.LeaseDuration);
        });
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IStepExecutor, HandlerStepExecutor>());
        services.TryAddSingleton<StepLogWriter>();
        services.AddHostedService(sp => sp.GetRequiredService<StepLogWriter>());
        services.TryAddSingleton<StepRunner>();
        // Stops before the bus (hosted services stop in reverse order): in-flight steps get the grace period.
        services.AddHostedService(sp => sp.GetRequiredService<StepRunner>());
        services.AddSingleton<IPipelinesEndpoints, WorkerEndpoints>();
        services.AddOptions<MassTransitHostOptions>().Configure<IOptions<WorkerOptions>>((host, worker) =>
        {
            host.StopTimeout = worker.Value.GracePeriod + TimeSpan.FromSeconds(15);
            host.ConsumerStopTimeout = worker.Value.GracePeriod;
        });
        return builder;
    }

    /// <summary>
    /// Lets this worker run container steps (Docker engine from <c>DOCKER_HOST</c> or the local
    /// socket; settings <c>Pipelines:Containers</c>). Containers are labelled with the worker's id.
    /// </summary>
    public static PipelinesBuilder AddContainers(this PipelinesBuilder builder, Action<ContainerOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.AddContainerSteps(configure);
        builder.Services.AddOptions<ContainerOptions>().PostConfigure<IOptions<WorkerOptions>>((containers, worker) => containers.WorkerId = worker.Value.Id);
        return builder;
    }

    /// <summary>
    /// <see cref="AddContainers"/> when <c>Pipelines:Containers:Enabled</c> says so, or, when it is
    /// not set, when a Docker engine is configured (<c>DOCKER_HOST</c>) or its local socket exists:
    /// a worker without an engine must not take container steps from the queue.
    /// </summary>
    public static PipelinesBuilder AddContainersWhenAvailable(this PipelinesBuilder builder, Microsoft.Extensions.Configuration.IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        var enabled = configuration[$"{ContainerOptions.Section}:Enabled"] is { } setting
            ? bool.Parse(setting)
            : Environment.GetEnvironmentVariable("DOCKER_HOST") is { Length: > 0 } || File.Exists("/var/run/docker.sock");
        return enabled ? builder.AddContainers() : builder;
    }

    /// <summary>Registers handler <typeparamref name="THandler"/> under <paramref name="name"/> (the <c>handler:</c> of a step).</summary>
    public static PipelinesBuilder AddHandler<THandler>(this PipelinesBuilder builder, string name)
        where THandler : class, IStepHandler
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.TryAddScoped<THandler>();
        builder.Services.AddSingleton(new HandlerRegistration(name, sp => sp.GetRequiredService<THandler>()));
        return builder;
    }

    /// <summary>Registers a handler written as a delegate, with an optional compensation.</summary>
    public static PipelinesBuilder AddHandler(this PipelinesBuilder builder, string name,
        Func<StepContext, Task<JsonNode?>> handle, Func<StepContext, JsonNode?, Task>? compensate = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var handler = new DelegateStepHandler(handle, compensate);
        builder.Services.AddSingleton(new HandlerRegistration(name, _ => handler));
        return builder;
    }

    /// <remarks>
    /// Resolves <see cref="StepRunner"/> per message, not here: it depends on the bus, which is
    /// being built while endpoints are configured.
    /// </remarks>
    private sealed class WorkerEndpoints(
        IServiceProvider provider, IEnumerable<HandlerRegistration> handlers, IEnumerable<IStepExecutor> executors,
        IOptions<WorkerOptions> options) : IPipelinesEndpoints
    {
        public void Configure(IBusRegistrationContext context, IReceiveConfigurator configurator)
        {
            StepRunner Runner() => provider.GetRequiredService<StepRunner>();
            var queues = handlers.Select(h => StepQueues.ForHandler(h.Name))
                .Concat(options.Value.Pools.Select(StepQueues.ForPool))
                .Concat(executors.Any(e => e is ContainerStepExecutor) ? [StepQueues.Containers] : [])
                .Distinct(StringComparer.Ordinal);
            foreach (var queue in queues)
            {
                configurator.ReceiveEndpoint(queue, endpoint =>
                {
                    endpoint.PrefetchCount = options.Value.ConcurrencyPerQueue;
                    endpoint.ConcurrentMessageLimit = options.Value.ConcurrencyPerQueue;
                    endpoint.ExecuteActivityHost<StepActivity, StepArguments>(() => new StepActivity(Runner()));
                });
                configurator.ReceiveEndpoint($"{queue}-compensate", endpoint =>
                    endpoint.ExecuteActivityHost<CompensateStepActivity, StepArguments>(() => ActivatorUtilities.CreateInstance<CompensateStepActivity>(provider)));
            }
            // Each worker hears every cancellation, so running steps stop at once.
            configurator.ReceiveEndpoint(new TemporaryEndpointDefinition(), KebabCaseEndpointNameFormatter.Instance, endpoint =>
                endpoint.Handler<RunCancellationRequested>(message =>
                {
                    Runner().CancelRun(message.Message.RunId);
                    return Task.CompletedTask;
                }));
        }
    }
}
