using Pipelines.Api.Endpoints;
using Microsoft.Extensions.Options;
using Pipelines.Api.Security;
using Pipelines.Core.Hosting;
using Pipelines.Core.Planning;
using Pipelines.Scheduler.Hosting;
using Pipelines.Workers.Demo;
using Pipelines.Workers.Hosting;

namespace Pipelines.Api.Hosting;

/// <summary>The roles this process hosts, as read at start-up from <c>Pipelines:Roles</c>.</summary>
public sealed record HostedRoles(PipelinesRoles Roles)
{
    public bool Has(PipelinesRoles role) => Roles.HasFlag(role);
}

public static class PipelinesHost
{
    /// <summary>Where the embedded default listens when no URL is configured: loopback only.</summary>
    public const string DefaultUrl = "http://localhost:5080";

    /// <summary>
    /// The engine roles of <c>Pipelines:Roles</c> (default: all), on the transport and run store of the
    /// <c>Pipelines</c> section (default: in-memory bus, SQLite under <c>data/</c>): the same binary is
    /// the all-in-one embedded default and any single role of a distributed deployment.
    /// </summary>
    public static WebApplicationBuilder AddPipelinesRoles(this WebApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var roles = new HostedRoles(PipelinesRolesConfiguration.Read(builder.Configuration));
        builder.Services.AddSingleton(roles);
        var pipelines = builder.Services.AddPipelines(builder.Configuration);
        if (roles.Has(PipelinesRoles.Coordinator))
        {
            pipelines.AddCoordinator();
        }
        if (roles.Has(PipelinesRoles.Worker))
        {
            pipelines.AddWorker().AddDemoHandlers();
        }
        if (roles.Has(PipelinesRoles.Containers))
        {
            pipelines.AddContainers();
        }
        if (roles.Has(PipelinesRoles.Scheduler))
        {
            pipelines.AddPipelinesScheduler();
        }
        else if (roles.Has(PipelinesRoles.Api))
        {
            pipelines.AddPipelinesSchedules();
        }
        builder.Services.AddHealthChecks()
            .AddCheck<RunStoreHealthCheck>("database", tags: [HealthEndpoints.ReadyTag], timeout: TimeSpan.FromSeconds(5));
        builder.Services.AddHostedService<StartupReport>();
        if (!HasConfiguredUrls(builder.Configuration))
        {
            builder.WebHost.UseUrls(DefaultUrl);
        }
        return builder;
    }

    /// <summary>
    /// Runs the host until it stops. The definition file and the settings are checked first: when
    /// they are invalid, the problems are printed (without a stack trace) and the result is 1.
    /// </summary>
    public static async Task<int> RunPipelinesAsync(this WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        try
        {
            app.Services.GetRequiredService<PipelineCatalog>();
            app.Services.GetService<IStartupValidator>()?.Validate();
            StartupReport.RequireLoopbackWhenOpen(StartupReport.ConfiguredUrls(app.Configuration), app.Services.GetRequiredService<HostedRoles>(), app.Services.GetRequiredService<ApiKeys>());
            await app.RunAsync();
            return 0;
        }
        catch (InvalidDefinitionException exception)
        {
            var file = Path.GetFullPath(app.Services.GetRequiredService<PipelinesOptions>().Definitions);
            await Console.Error.WriteLineAsync($"pipelines: cannot start: the definition file {file} is invalid (set Pipelines:Definitions to use another):");
            await Console.Error.WriteLineAsync(exception.Message);
            return 1;
        }
        catch (OptionsValidationException exception)
        {
            await Console.Error.WriteLineAsync($"pipelines: cannot start: {exception.Message}");
            return 1;
        }
    }

    private static bool HasConfiguredUrls(ConfigurationManager configuration) =>
        !string.IsNullOrEmpty(configuration["urls"])
        || !string.IsNullOrEmpty(configuration["http_ports"])
        || !string.IsNullOrEmpty(configuration["https_ports"])
        || configuration.GetSection("Kestrel:Endpoints").Exists();
}
