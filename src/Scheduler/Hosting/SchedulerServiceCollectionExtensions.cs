using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Npgsql;
using Pipelines.Core.Hosting;
using Pipelines.Core.Persistence;
using Pipelines.Scheduler.Schedules;
using Quartz;
using Quartz.Extensibility;

namespace Pipelines.Scheduler.Hosting;

public static class SchedulerServiceCollectionExtensions
{
    /// <summary>
    /// The scheduler role: fires schedules (Quartz, clustered on PostgreSQL), upserts the definition
    /// file's schedules at start-up, and registers <see cref="ScheduleService"/>. Any number of
    /// replicas may run it against one database. Calling it twice, or after
    /// <see cref="AddPipelinesSchedules"/>, is harmless.
    /// </summary>
    public static PipelinesBuilder AddPipelinesScheduler(this PipelinesBuilder pipelines, Action<SchedulerOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(pipelines);
        AddPipelinesSchedules(pipelines, configure);
        var services = pipelines.Services;
        if (services.Any(d => d.ServiceType == typeof(SchedulerRoleMarker)))
        {
            return pipelines;
        }
        services.AddSingleton<SchedulerRoleMarker>();
        // Before Quartz's hosted service, so the file's schedules are in place when firing starts.
        services.AddHostedService<FileScheduleSync>();
        services.AddQuartzHostedService(hosted => hosted.WaitForJobsToComplete = true);
        return pipelines;
    }

    /// <summary>
    /// <see cref="ScheduleService"/> only, for a process that changes schedules but does not fire
    /// them (the API without the scheduler role): its Quartz scheduler is never started.
    /// </summary>
    public static PipelinesBuilder AddPipelinesSchedules(this PipelinesBuilder pipelines, Action<SchedulerOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(pipelines);
        var services = pipelines.Services;
        if (services.Any(d => d.ServiceType == typeof(ScheduleService)))
        {
            if (configure is not null)
            {
                services.Configure(configure);
            }
            return pipelines;
        }
        services.AddOptions<SchedulerOptions>()
            .BindConfiguration(SchedulerOptions.Section)
            .Configure(options => configure?.Invoke(options))
            .ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<SchedulerOptions>, SchedulerOptionsValidator>());
        services.TryAddSingleton(TimeProvider.System);
        services.AddSingleton<ScheduleService>();
        AddQuartz(services, pipelines.Options.Database);
        return pipelines;
    }

    private static void AddQuartz(IServiceCollection services, RunStoreOptions database)
    {
        services.AddQuartz(quartz =>
        {
            quartz.UsePersistentStore(store =>
            {
                if (database.Provider == RunStoreProvider.PostgreSql)
                {
                    // Before UsePostgres: Quartz 4.7.3 silently keeps its own delegate when this comes after.
                    store.UseDriverDelegate(provider => new FencedPostgreSqlDelegate(provider.GetRequiredService<StaleFires>()));
                    store.UsePostgres(QuartzConnectionString(database.EffectiveConnectionString));
                    store.UseClustering();
                }
                else
                {
                    // The embedded default is one process: no cluster to coordinate.
                    store.UseSqlite(database.EffectiveConnectionString);
                }
                store.UseSystemTextJsonSerializer();
                store.ConfigureStore(job =>
                {
                    job.StoreJobDataAsStrings = true;
                    job.SchemaProvisioning = database.Migrate ? SchemaProvisioning.CreateIfMissing : SchemaProvisioning.Validate;
                });
            });
            quartz.AddTriggerListener<MisfireLogger>();
            quartz.AddTriggerListener<StaleFireVeto>();
            quartz.AddSchedulerListener(provider => provider.GetRequiredService<LocalScheduleChanges>());
        });
        WrapJobStore(services);
        services.TryAddSingleton<StaleFires>();
        services.TryAddSingleton<LocalScheduleChanges>();
        services.TryAddSingleton<StandingFires>();
        // Our settings reach Quartz through its options, so that Pipelines:Scheduler is the one place to set them.
        services.AddOptions<QuartzSchedulerOptions>().Configure<IOptions<SchedulerOptions>>((quartz, ours) =>
        {
            quartz.InstanceName = ours.Value.InstanceName;
            quartz.IdleWaitTime = ours.Value.PollInterval;
            quartz.MaxBatchSize = ours.Value.MaxConcurrentFires;
            // With the next option: a replica that stops hands the fires it has under way (some recorded
            // ahead of their time, FireAheadJobStore) back to the cluster instead of losing them.
            quartz.ShutdownJobInterruption = ShutdownJobInterruption.Always;
        });
        services.AddOptions<AdoJobStoreOptions>().Configure<IOptions<SchedulerOptions>>((store, ours) =>
        {
            store.MisfireThreshold = ours.Value.MisfireThreshold;
            store.RecoverFiringsCancelledByShutdown = true;
        });
        services.AddOptions<ThreadPoolOptions>().Configure<IOptions<SchedulerOptions>>((pool, ours) => pool.MaxConcurrency = ours.Value.MaxConcurrentFires);
        services.AddOptions<ClusteringOptions>().Configure<IOptions<SchedulerOptions>>((cluster, ours) =>
        {
            cluster.CheckinInterval = ours.Value.ClusterCheckinInterval;
            cluster.CheckinMisfireThreshold = ours.Value.ClusterCheckinMisfireThreshold;
        });
    }

    /// <summary>What Quartz's connections are called in <c>pg_stat_activity</c> unless the connection string names them.</summary>
    internal const string QuartzApplicationName = "pipelines-scheduler";

    /// <summary>
    /// Quartz's connection string: the run store's (<see cref="RunStoreOptions.EffectiveConnectionString"/>,
    /// whose pool keeps the connections it opened), with the connections named
    /// <see cref="QuartzApplicationName"/> unless the string names them, so that they can be told from the
    /// run store's.
    /// </summary>
    private static string QuartzConnectionString(string connectionString)
    {
        var builder = new NpgsqlConnectionStringBuilder(connectionString);
        if (!builder.ConnectionString.Contains("Application Name=", StringComparison.OrdinalIgnoreCase))
        {
            builder.ApplicationName = QuartzApplicationName;
        }
        return builder.ConnectionString;
    }

    /// <summary>
    /// Wraps the store <c>UsePersistentStore</c> registered in <see cref="FireAheadJobStore"/> and
    /// <see cref="PacedCompletionJobStore"/>. Quartz's database stores are internal types, so the wrappers
    /// decorate the registration's factory.
    /// </summary>
    private static void WrapJobStore(IServiceCollection services)
    {
        var index = services.IndexOf(services.SingleOrDefault(d => d.ServiceType == typeof(IJobStore) && !d.IsKeyedService && d.ImplementationFactory is not null)
            ?? throw new InvalidOperationException("Quartz registered no job store factory to wrap; has Quartz changed how UsePersistentStore registers its store?"));
        var quartzStore = services[index].ImplementationFactory!;
        // Each wrapper a registration of its own, so that the container disposes both.
        services.AddSingleton(provider => new PacedCompletionJobStore((IJobStore)quartzStore(provider)));
        services[index] = ServiceDescriptor.Singleton<IJobStore>(provider =>
            ActivatorUtilities.CreateInstance<FireAheadJobStore>(provider, provider.GetRequiredService<PacedCompletionJobStore>()));
    }

    private sealed class SchedulerRoleMarker;
}

/// <summary>Upserts the definition file's schedules when the scheduler starts.</summary>
internal sealed class FileScheduleSync(ScheduleService schedules, IOptions<SchedulerOptions> options) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken) =>
        options.Value.SyncFileSchedules ? schedules.SyncFileSchedulesAsync(cancellationToken) : Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
