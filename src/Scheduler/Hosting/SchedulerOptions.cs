using Microsoft.Extensions.Options;

namespace Pipelines.Scheduler.Hosting;

/// <summary>Configuration section <c>Pipelines:Scheduler</c>. The job store is the run store's database (<c>Pipelines:Database</c>).</summary>
public sealed class SchedulerOptions
{
    public const string Section = "Pipelines:Scheduler";

    /// <summary>
    /// How often an idle scheduler looks in the database for schedules another process created or
    /// changed (Quartz's idle wait). Default 1 s, which is also Quartz's minimum. Changes made in the
    /// scheduler's own process take effect at once.
    /// </summary>
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// How late a fire may be before it counts as missed and the schedule's misfire policy decides
    /// (fire once now, or skip). Default 10 s: a fire delayed by load, or by a replica failing over
    /// (at most 2 × <see cref="ClusterCheckinInterval"/> + <see cref="ClusterCheckinMisfireThreshold"/>,
    /// 6 s by default), still runs late; one that fell while every scheduler was down is a misfire.
    /// Keep it above that failover time, or a failover collapses the fires it delayed into one.
    /// </summary>
    public TimeSpan MisfireThreshold { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Fires that may be under way at the same time on one replica (Quartz's thread pool and batch size),
    /// counting those recorded ahead of their time and waiting for it (<see cref="FireAhead"/>). Default
    /// 200: a replica takes a burst of up to this many fires due at the same second in one round and
    /// records them together; the rest of a larger burst waits for free slots. With 10,000 schedules on a
    /// 2-core machine, 200 against 100 halved the lateness of bursts of 167 (p50 40 ms against 84 ms) and
    /// changed nothing at 33 a second (bench/README.md).
    /// </summary>
    public int MaxConcurrentFires { get; set; } = 200;

    /// <summary>
    /// How long before its time a fire is recorded in the job store; the run itself starts at the time.
    /// Default 500 ms. Recording a burst of fires takes Quartz several statements per fire, one after
    /// another, and on a busy database that stretched to 400 ms; recorded ahead, it no longer makes the
    /// runs late (bench/README.md). 0 records each fire at its time, as Quartz does by itself. Must be
    /// less than <see cref="PollInterval"/>: a replica takes triggers this much further ahead than the
    /// poll interval, and waits up to a poll interval to record them.
    /// </summary>
    public TimeSpan FireAhead { get; set; } = TimeSpan.FromMilliseconds(500);

    /// <summary>How often a fire held back by <c>overlap: queue</c> checks whether the previous run finished. Default 1 s.</summary>
    public TimeSpan QueueCheckInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Most fires one schedule may hold back with <c>overlap: queue</c>; later ones are dropped and logged. Default 100.</summary>
    public int MaxQueuedFires { get; set; } = 100;

    /// <summary>
    /// How often a replica records in the database that it is alive (one small update). Default 1 s, so
    /// that a dead replica's fires are taken over in a few seconds (<see cref="ClusterCheckinMisfireThreshold"/>).
    /// </summary>
    public TimeSpan ClusterCheckinInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// How long past a missed check-in the other replicas wait before they fail a replica out and take
    /// its fires over. Default 4 s: longer than a pause a busy replica should ever take, and short enough
    /// that the fires it held run a few seconds late, well inside <see cref="MisfireThreshold"/>. A
    /// replica failed out while it was only slow drops the fires it held; the others fire them.
    /// </summary>
    public TimeSpan ClusterCheckinMisfireThreshold { get; set; } = TimeSpan.FromSeconds(4);

    /// <summary>
    /// The cluster's name in the job store: replicas with the same name share the schedules and fire
    /// each once. Two deployments may share one database under different names. Default <c>pipelines</c>.
    /// </summary>
    public string InstanceName { get; set; } = "pipelines";

    /// <summary>Upsert the definition file's schedules at start-up. Default true.</summary>
    public bool SyncFileSchedules { get; set; } = true;
}

/// <summary>Reports every bad setting at once, each with its name and value.</summary>
internal sealed class SchedulerOptionsValidator : IValidateOptions<SchedulerOptions>
{
    public ValidateOptionsResult Validate(string? name, SchedulerOptions options)
    {
        var failures = new List<string>();
        void Require(bool ok, string setting, object value, string rule)
        {
            if (!ok)
            {
                failures.Add($"{SchedulerOptions.Section}:{setting} is {value}; {rule}");
            }
        }

        Require(options.PollInterval >= TimeSpan.FromSeconds(1), nameof(options.PollInterval), options.PollInterval, "it must be at least 00:00:01 (Quartz's minimum idle wait)");
        Require(options.FireAhead >= TimeSpan.Zero && options.FireAhead < options.PollInterval, nameof(options.FireAhead), options.FireAhead, $"it must be at least 0 and less than {nameof(options.PollInterval)} ({options.PollInterval})");
        Require(options.MisfireThreshold > TimeSpan.Zero && options.MisfireThreshold.Ticks % TimeSpan.TicksPerMillisecond == 0, nameof(options.MisfireThreshold), options.MisfireThreshold, "it must be positive, in whole milliseconds");
        Require(options.MaxConcurrentFires >= 1, nameof(options.MaxConcurrentFires), options.MaxConcurrentFires, "it must be at least 1");
        Require(options.QueueCheckInterval >= TimeSpan.FromMilliseconds(100), nameof(options.QueueCheckInterval), options.QueueCheckInterval, "it must be at least 00:00:00.1");
        Require(options.MaxQueuedFires >= 1, nameof(options.MaxQueuedFires), options.MaxQueuedFires, "it must be at least 1");
        Require(options.ClusterCheckinInterval >= TimeSpan.FromSeconds(1), nameof(options.ClusterCheckinInterval), options.ClusterCheckinInterval, "it must be at least 00:00:01");
        Require(options.ClusterCheckinMisfireThreshold >= TimeSpan.FromSeconds(1), nameof(options.ClusterCheckinMisfireThreshold), options.ClusterCheckinMisfireThreshold, "it must be at least 00:00:01");
        Require(!string.IsNullOrWhiteSpace(options.InstanceName), nameof(options.InstanceName), $"'{options.InstanceName}'", "it must name the cluster");
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
