using MassTransit;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Pipelines.Core.Coordination;
using Pipelines.Core.Execution;
using Pipelines.Core.Persistence;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;
using Pipelines.Core.Planning;
using Pipelines.Core.Telemetry;
using Pipelines.Core.Runs;

namespace Pipelines.Core.Hosting;

/// <summary>Adds receive endpoints to the bus; each role (coordinator, worker) contributes its own.</summary>
public interface IPipelinesEndpoints
{
    void Configure(IBusRegistrationContext context, IReceiveConfigurator configurator);
}

/// <summary>
/// Returned by <see cref="PipelinesServiceCollectionExtensions.AddPipelines"/>: the client role
/// (start, read, cancel runs) is always there; other roles are added with <c>Add...</c> calls,
/// as Hangfire separates <c>AddHangfire</c> from <c>AddHangfireServer</c>.
/// </summary>
public sealed class PipelinesBuilder(IServiceCollection services, PipelinesOptions options)
{
    public IServiceCollection Services { get; } = services;

    public PipelinesOptions Options { get; } = options;

    /// <summary>Hosts the coordinator: plans runs, starts chains, joins, fails, cancels, compensates.</summary>
    public PipelinesBuilder AddCoordinator(Action<CoordinatorOptions>? configure = null)
    {
        Services.AddOptions<CoordinatorOptions>().BindConfiguration($"{PipelinesOptions.Section}:Coordinator").Configure(o => configure?.Invoke(o));
        Services.TryAddSingleton<RunCoordinator>();
        Services.AddSingleton<IPipelinesEndpoints, CoordinatorEndpoints>();
        Services.AddHostedService<RunSweeper>();
        return this;
    }

    private sealed class CoordinatorEndpoints(IServiceProvider provider) : IPipelinesEndpoints
    {
        public void Configure(IBusRegistrationContext context, IReceiveConfigurator configurator) =>
            configurator.ReceiveEndpoint(StepQueues.Coordinator, endpoint =>
            {
                // Transient database errors (a restart, a deadlock victim) are retried before a
                // message goes to the error queue.
                endpoint.UseMessageRetry(retry =>
                {
                    retry.Exponential(20, TimeSpan.FromMilliseconds(50), TimeSpan.FromSeconds(30), TimeSpan.FromMilliseconds(200));
                    // A StartRun published with a bad payload or a key in the scheduler's form goes to
                    // the error queue with its problem, at once.
                    retry.Ignore<InvalidRunInputException>();
                    retry.Ignore<ReservedIdempotencyKeyException>();
                });
                endpoint.Consumer(() => ActivatorUtilities.CreateInstance<StartRunConsumer>(provider));
                endpoint.Consumer(() => ActivatorUtilities.CreateInstance<StartRunsConsumer>(provider));
                endpoint.Consumer(() => ActivatorUtilities.CreateInstance<CancelRunConsumer>(provider));
                endpoint.Consumer(() => ActivatorUtilities.CreateInstance<DetachedStepFinishedConsumer>(provider));
                endpoint.Consumer(() => ActivatorUtilities.CreateInstance<RoutingSlipEndConsumer>(provider));
            });
    }
}

public static class PipelinesServiceCollectionExtensions
{
    /// <summary>
    /// The shared part of every role: definitions, run store, bus and the run launcher. Settings come
    /// from the <c>Pipelines</c> configuration section, then <paramref name="configure"/>.
    /// </summary>
    public static PipelinesBuilder AddPipelines(this IServiceCollection services, IConfiguration configuration, Action<PipelinesOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        var options = new PipelinesOptions();
        configuration.GetSection(PipelinesOptions.Section).Bind(options);
        configure?.Invoke(options);

        services.AddSingleton(options);
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton(_ => PipelineCatalog.Load(options.Definitions));
        services.TryAddSingleton(new PipelinesEnvironment(options.Environment ?? PipelinesEnvironment.FromProcess().Name));
        services.TryAddSingleton(sp => new RunStore(options.Database, sp.GetRequiredService<TimeProvider>()));
        services.TryAddSingleton<RunQueries>();
        services.TryAddSingleton<GroupCommitWriter>();
        services.TryAddSingleton<RoutingSlipPlanner>();
        services.TryAddSingleton<ISecretResolver, ConfigurationSecretResolver>();
        services.TryAddSingleton(sp => new RunLauncher(
            sp.GetRequiredService<RunStore>(), sp.GetRequiredService<PipelineCatalog>(),
            sp.GetRequiredService<IBus>(), sp.GetRequiredService<PipelinesEnvironment>()));
        // Registered before the bus so that the schema exists before any message is consumed.
        services.AddHostedService<RunStoreMigrator>();
        AddTelemetryExport(services, configuration);

        services.AddMassTransit(bus =>
        {
            // MassTransit 8.4+ reports usage to its vendor by default; a framework must not phone home for
            // its users (and offline it logs a warning). MASSTRANSIT_USAGE_TELEMETRY=true opts back in.
            bus.DisableUsageTelemetry();

            void ConfigureEndpoints(IBusRegistrationContext context, IReceiveConfigurator configurator)
            {
                foreach (var endpoints in context.GetServices<IPipelinesEndpoints>())
                {
                    endpoints.Configure(context, configurator);
                }
            }

            if (options.Transport == TransportKind.RabbitMq)
            {
                bus.UsingRabbitMq((context, rabbit) =>
                {
                    rabbit.Host(new Uri(options.RabbitMq));
                    ConfigureEndpoints(context, rabbit);
                });
            }
            else
            {
                bus.UsingInMemory((context, memory) => ConfigureEndpoints(context, memory));
            }
        });
        services.AddOptions<MassTransitHostOptions>().Configure(o => o.WaitUntilStarted = true);
        return new PipelinesBuilder(services, options);
    }

    /// <summary>Exports traces and metrics over OTLP when an endpoint is configured (the standard OTEL_* settings).</summary>
    private static void AddTelemetryExport(IServiceCollection services, IConfiguration configuration)
    {
        if (string.IsNullOrEmpty(configuration["OTEL_EXPORTER_OTLP_ENDPOINT"] ?? Environment.GetEnvironmentVariable("OTEL_EXPORTER_OTLP_ENDPOINT")))
        {
            return;
        }
        services.AddOpenTelemetry()
            .ConfigureResource(resource => resource.AddService(configuration["OTEL_SERVICE_NAME"] ?? "pipelines"))
            .WithTracing(tracing => tracing.AddSource(PipelinesTelemetry.Name, "MassTransit").AddOtlpExporter())
            .WithMetrics(metrics => metrics.AddMeter(PipelinesTelemetry.Name, "MassTransit").AddOtlpExporter());
    }

    private sealed class RunStoreMigrator(RunStore store, PipelinesOptions options) : IHostedService
    {
        public Task StartAsync(CancellationToken cancellationToken) =>
            options.Database.Migrate ? store.MigrateAsync(cancellationToken) : Task.CompletedTask;

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }
}
