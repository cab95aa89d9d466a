using System.Buffers.Text;
using System.Text;
using Microsoft.Extensions.Logging;
using Pipelines.Core.Definitions;
using Pipelines.Core.Planning;
using Pipelines.Core.Runs;
using Quartz;

namespace Pipelines.Scheduler.Schedules;

/// <summary>
/// Creates, changes, pauses, resumes, deletes, lists and describes schedules. Changes are written to
/// the Quartz job store in the shared database, where every scheduler replica finds them on its next
/// poll (<c>Pipelines:Scheduler:PollInterval</c>, 1 s): no restart, and no message between processes.
/// </summary>
public sealed class ScheduleService(
    ISchedulerFactory schedulers,
    PipelineCatalog catalog,
    TimeProvider clock,
    IEnumerable<IScheduleRule> rules,
    ILogger<ScheduleService> logger)
{
    private const int PageSize = 500;

    /// <summary>The problems <see cref="CreateAsync"/> and <see cref="UpdateAsync"/> would refuse <paramref name="schedule"/> for, each naming its field.</summary>
    public IReadOnlyList<ScheduleProblem> Validate(string pipeline, ScheduleDefinition schedule)
    {
        var now = clock.GetUtcNow();
        var problems = ScheduleValidator.Problems(catalog, pipeline, schedule, now).ToList();
        if (problems.Count == 0)
        {
            CronSchedule.TryNormalize(schedule.Cron, out var quartz, out _);
            CronSchedule.TryFindTimeZone(schedule.Timezone, out var zone, out _);
            var draft = new ScheduleDraft(new ScheduleKey(pipeline, schedule.Name), schedule, quartz, zone);
            problems.AddRange(rules.SelectMany(rule => rule.Check(draft, now)));
        }
        return problems;
    }

    /// <exception cref="InvalidScheduleException">The schedule or its pipeline is invalid.</exception>
    /// <exception cref="ScheduleAlreadyExistsException">The pipeline has a schedule of that name.</exception>
    public async Task<ScheduleDescription> CreateAsync(string pipeline, ScheduleDefinition schedule, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(schedule);
        var key = new ScheduleKey(pipeline, schedule.Name);
        ThrowIfInvalid(key, schedule);
        var scheduler = await schedulers.GetScheduler(cancellationToken);
        try
        {
            await StoreAsync(scheduler, key, StoredSchedule.From(schedule, ScheduleSource.Api), schedule.Enabled, replace: false, cancellationToken);
        }
        catch (ObjectAlreadyExistsException)
        {
            throw new ScheduleAlreadyExistsException(key);
        }
        logger.Changed(key, "created");
        return (await DescribeAsync(key, cancellationToken: cancellationToken))!;
    }

    /// <summary>
    /// Replaces the schedule's definition, <c>enabled</c> included. A schedule from the definition
    /// file becomes an API schedule: reloading the file no longer changes it.
    /// </summary>
    /// <exception cref="ScheduleNotFoundException">There is no such schedule.</exception>
    /// <exception cref="InvalidScheduleException">The new definition is invalid, or renames the schedule.</exception>
    public async Task<ScheduleDescription> UpdateAsync(ScheduleKey key, ScheduleDefinition schedule, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(schedule);
        if (schedule.Name.Length > 0 && schedule.Name != key.Name)
        {
            throw new InvalidScheduleException(key, [new("name", $"'{schedule.Name}' differs from the schedule being updated, '{key.Name}'; a schedule cannot be renamed")]);
        }
        var named = StoredSchedule.From(schedule, ScheduleSource.Api).ToDefinition(key.Name, schedule.Enabled);
        ThrowIfInvalid(key, named);
        var scheduler = await schedulers.GetScheduler(cancellationToken);
        await RequireAsync(scheduler, key, cancellationToken);
        await StoreAsync(scheduler, key, StoredSchedule.From(named, ScheduleSource.Api), named.Enabled, replace: true, cancellationToken);
        logger.Changed(key, "updated");
        return (await DescribeAsync(key, cancellationToken: cancellationToken))!;
    }

    /// <summary>Stops the schedule firing until <see cref="ResumeAsync"/>; queued fires wait too.</summary>
    public async Task<ScheduleDescription> PauseAsync(ScheduleKey key, CancellationToken cancellationToken = default)
    {
        var scheduler = await schedulers.GetScheduler(cancellationToken);
        if (!await scheduler.PauseJob(key.JobKey, cancellationToken))
        {
            throw new ScheduleNotFoundException(key);
        }
        logger.Changed(key, "paused");
        return (await DescribeAsync(key, cancellationToken: cancellationToken))!;
    }

    /// <summary>
    /// Fires again from the next fire time after now. Fires that fell in the pause are not made up:
    /// the misfire policy is for a scheduler that was down, not for a schedule someone paused.
    /// </summary>
    public async Task<ScheduleDescription> ResumeAsync(ScheduleKey key, CancellationToken cancellationToken = default)
    {
        var scheduler = await schedulers.GetScheduler(cancellationToken);
        var job = await scheduler.GetJobDetail(key.JobKey, cancellationToken) ?? throw new ScheduleNotFoundException(key);
        var stored = StoredSchedule.FromJobData(job.JobDataMap);
        if (ScheduleTriggers.CronTrigger(key, stored, clock) is { } trigger)
        {
            // A new trigger instead of ResumeTrigger, which would apply the misfire policy to the paused time.
            await scheduler.ScheduleJob(trigger, ScheduleJobOptions.Replacing, cancellationToken);
        }
        await scheduler.ResumeJob(key.JobKey, cancellationToken);
        logger.Changed(key, "resumed");
        return (await DescribeAsync(key, cancellationToken: cancellationToken))!;
    }

    /// <summary>Deletes the schedule and its queued fires. Runs it started are kept. A schedule still in the definition file comes back at the next start-up.</summary>
    public async Task DeleteAsync(ScheduleKey key, CancellationToken cancellationToken = default)
    {
        var scheduler = await schedulers.GetScheduler(cancellationToken);
        if (!await scheduler.DeleteJob(key.JobKey, cancellationToken))
        {
            throw new ScheduleNotFoundException(key);
        }
        logger.Changed(key, "deleted");
    }

    /// <returns>Null when there is no such schedule.</returns>
    public async Task<ScheduleDescription?> DescribeAsync(ScheduleKey key, int nextFireTimes = 5, CancellationToken cancellationToken = default)
    {
        var scheduler = await schedulers.GetScheduler(cancellationToken);
        if (await scheduler.GetJobDetail(key.JobKey, cancellationToken) is not { } job)
        {
            return null;
        }
        var trigger = await scheduler.GetTrigger(key.TriggerKey, cancellationToken);
        var state = trigger is null ? TriggerState.None : await scheduler.GetTriggerState(key.TriggerKey, cancellationToken);
        var queued = await scheduler.QueryTriggers(new TriggerQuery { Job = key.JobKey, Group = GroupMatcher<TriggerKey>.GroupEquals(ScheduleTriggers.QueuedGroup) }, cancellationToken);
        var firing = trigger is null ? null : new TriggerView(state, trigger.NextFireTimeUtc, trigger.PreviousFireTimeUtc, trigger);
        return Describe(key, job, firing, queued.Items.Count, nextFireTimes);
    }

    /// <summary>
    /// One page of the schedules (of <paramref name="pipeline"/>, or all), ordered by pipeline and name;
    /// pass <see cref="SchedulePage.NextCursor"/> back as <paramref name="cursor"/> for the next page.
    /// Paging is by the last key listed, so schedules created or deleted meanwhile never shift a page.
    /// </summary>
    /// <exception cref="InvalidCursorException">The cursor is not one a previous page returned.</exception>
    public async Task<SchedulePage> ListAsync(string? pipeline, int limit, string? cursor = null, int nextFireTimes = 1, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        var after = cursor is null ? (ScheduleKey?)null : DecodeCursor(cursor);
        var scheduler = await schedulers.GetScheduler(cancellationToken);
        // Keys and trigger headers are a short row per schedule, read in one query each (offset pages
        // would rescan the rows before each page); the costly part, each job's data and its fire times,
        // is paid for the page only.
        var jobKeys = await scheduler.QueryJobs(new JobQuery
        {
            Group = GroupMatcher<JobKey>.GroupEquals(ScheduleKey.Group),
            Name = pipeline is null ? null : NameMatcher<JobKey>.NameStartsWith(pipeline + "/"),
            Take = PagedQuery.All,
        }, cancellationToken);
        var keys = jobKeys.Items.Select(j => ScheduleKey.FromJobKey(j.Key))
            .Where(k => after is not { } last || Compare(k, last) > 0)
            .Order(Comparer<ScheduleKey>.Create(Compare))
            .Take(limit + 1)
            .ToList();
        var page = keys.Count > limit ? keys[..limit] : keys;
        if (page.Count == 0)
        {
            return new SchedulePage([], null);
        }
        var queued = (await AllPagesAsync(async skip => await scheduler.QueryTriggers(
                new TriggerQuery { Group = GroupMatcher<TriggerKey>.GroupEquals(ScheduleTriggers.QueuedGroup), Skip = skip, Take = PageSize }, cancellationToken)))
            .CountBy(t => t.JobKey)
            .ToDictionary();
        // Trigger headers carry state and fire times without loading each trigger, which costs a
        // few queries apiece; later fire times come from the stored definition, as Quartz computes them.
        var headers = (await scheduler.QueryTriggers(new TriggerQuery
            {
                Group = GroupMatcher<TriggerKey>.GroupEquals(ScheduleKey.Group),
                Name = pipeline is null ? null : NameMatcher<TriggerKey>.NameStartsWith(pipeline + "/"),
                Take = PagedQuery.All,
            }, cancellationToken)).Items
            .ToDictionary(t => t.JobKey);
        var jobs = (await scheduler.GetJobDetails([.. page.Select(k => k.JobKey)], cancellationToken)).ToDictionary(j => j.Key);
        var descriptions = new List<ScheduleDescription>(page.Count);
        foreach (var key in page)
        {
            if (!jobs.TryGetValue(key.JobKey, out var job))
            {
                continue; // deleted since the keys were read
            }
            var firing = headers.TryGetValue(job.Key, out var header)
                && ScheduleTriggers.CronTrigger(key, StoredSchedule.FromJobData(job.JobDataMap), clock) is { } schedule
                ? new TriggerView(header.State, header.NextFireTimeUtc, header.PreviousFireTimeUtc, schedule)
                : null;
            descriptions.Add(Describe(key, job, firing, queued.GetValueOrDefault(job.Key), nextFireTimes));
        }
        return new SchedulePage(descriptions, keys.Count > limit ? EncodeCursor(page[^1]) : null);
    }

    /// <summary>
    /// Makes the stored schedules match the definition file: creates and updates the file's schedules,
    /// deletes file schedules the file no longer declares, and leaves every schedule changed through
    /// the API as it is. A file schedule whose definition did not change is not touched, so its next
    /// fire time and paused state survive a restart.
    /// </summary>
    public async Task<FileSyncResult> SyncFileSchedulesAsync(CancellationToken cancellationToken = default)
    {
        var scheduler = await schedulers.GetScheduler(cancellationToken);
        var existing = await StoredSchedulesAsync(scheduler, cancellationToken);
        int created = 0, updated = 0, unchanged = 0, removed = 0, keptFromApi = 0;
        var declared = new HashSet<ScheduleKey>();
        foreach (var pipeline in catalog.Pipelines)
        {
            foreach (var schedule in pipeline.Definition.Schedules)
            {
                var key = new ScheduleKey(pipeline.Definition.Name, schedule.Name);
                declared.Add(key);
                var stored = StoredSchedule.From(schedule, ScheduleSource.File);
                if (existing.TryGetValue(key, out var current))
                {
                    if (current.Source == ScheduleSource.Api)
                    {
                        logger.FileScheduleOverridden(key);
                        keptFromApi++;
                        continue;
                    }
                    if (current.FileHash == stored.FileHash)
                    {
                        unchanged++;
                        continue;
                    }
                }
                if (!await StoreAsync(scheduler, key, stored, schedule.Enabled, replace: true, cancellationToken))
                {
                    logger.FileScheduleEnded(key);
                }
                if (current is null)
                {
                    created++;
                }
                else
                {
                    updated++;
                }
            }
        }
        foreach (var (key, stored) in existing)
        {
            if (stored.Source == ScheduleSource.File && !declared.Contains(key) && await scheduler.DeleteJob(key.JobKey, cancellationToken))
            {
                removed++;
            }
        }
        logger.FileSynced(created, updated, unchanged, removed, keptFromApi);
        return new FileSyncResult(created, updated, unchanged, removed, keptFromApi);
    }

    /// <returns>False when the schedule has no fire time left and was stored without a trigger.</returns>
    private async Task<bool> StoreAsync(IScheduler scheduler, ScheduleKey key, StoredSchedule stored, bool enabled, bool replace, CancellationToken cancellationToken)
    {
        var job = ScheduleTriggers.Job(key, stored);
        if (ScheduleTriggers.CronTrigger(key, stored, clock) is not { } trigger)
        {
            await scheduler.AddJob(job, new AddJobOptions { Replace = replace }, cancellationToken);
            await scheduler.UnscheduleJob(key.TriggerKey, cancellationToken);
            return false;
        }
        await scheduler.ScheduleJob(job, trigger, new ScheduleJobOptions { Replace = replace, Paused = !enabled }, cancellationToken);
        return true;
    }

    private void ThrowIfInvalid(ScheduleKey key, ScheduleDefinition schedule)
    {
        if (Validate(key.Pipeline, schedule) is { Count: > 0 } problems)
        {
            throw new InvalidScheduleException(key, problems);
        }
    }

    private static async Task RequireAsync(IScheduler scheduler, ScheduleKey key, CancellationToken cancellationToken)
    {
        if (await scheduler.GetJobDetail(key.JobKey, cancellationToken) is null)
        {
            throw new ScheduleNotFoundException(key);
        }
    }

    private ScheduleDescription Describe(ScheduleKey key, IJobDetail job, TriggerView? trigger, int queued, int nextFireTimes)
    {
        var stored = StoredSchedule.FromJobData(job.JobDataMap);
        var state = trigger?.State switch
        {
            null or TriggerState.Complete or TriggerState.None => ScheduleState.Ended,
            TriggerState.Paused => ScheduleState.Paused,
            TriggerState.Error => ScheduleState.Error,
            _ => ScheduleState.Active,
        };
        var next = trigger is not null && state == ScheduleState.Active
            ? ScheduleTriggers.NextFireTimes(trigger.Schedule, trigger.NextFireTime, clock.GetUtcNow(), nextFireTimes)
            : [];
        return new ScheduleDescription(
            key,
            stored.ToDefinition(key.Name, enabled: state != ScheduleState.Paused),
            stored.Source,
            state,
            next,
            trigger?.PreviousFireTime,
            queued);
    }

    /// <summary>What a description needs of a cron trigger; <see cref="Schedule"/> computes fire times after the next one.</summary>
    private sealed record TriggerView(TriggerState State, DateTimeOffset? NextFireTime, DateTimeOffset? PreviousFireTime, ITrigger Schedule);

    private static async Task<Dictionary<ScheduleKey, StoredSchedule>> StoredSchedulesAsync(IScheduler scheduler, CancellationToken cancellationToken)
    {
        var keys = await AllPagesAsync(async skip => await scheduler.QueryJobs(
            new JobQuery { Group = GroupMatcher<JobKey>.GroupEquals(ScheduleKey.Group), Skip = skip, Take = PageSize }, cancellationToken));
        var stored = new Dictionary<ScheduleKey, StoredSchedule>(keys.Count);
        foreach (var chunk in keys.Select(j => j.Key).Chunk(PageSize))
        {
            foreach (var job in await scheduler.GetJobDetails(chunk, cancellationToken))
            {
                stored[ScheduleKey.FromJobKey(job.Key)] = StoredSchedule.FromJobData(job.JobDataMap);
            }
        }
        return stored;
    }

    private static int Compare(ScheduleKey a, ScheduleKey b)
    {
        var pipeline = string.CompareOrdinal(a.Pipeline, b.Pipeline);
        return pipeline != 0 ? pipeline : string.CompareOrdinal(a.Name, b.Name);
    }

    private static string EncodeCursor(ScheduleKey last) => Base64Url.EncodeToString(Encoding.UTF8.GetBytes(last.ToString()));

    private static ScheduleKey DecodeCursor(string cursor)
    {
        try
        {
            var text = Encoding.UTF8.GetString(Base64Url.DecodeFromChars(cursor));
            var slash = text.IndexOf('/', StringComparison.Ordinal);
            if (slash > 0 && slash < text.Length - 1)
            {
                return new ScheduleKey(text[..slash], text[(slash + 1)..]);
            }
        }
        catch (FormatException)
        {
        }
        throw new InvalidCursorException("the cursor is not one a previous page of schedules returned; start again without it");
    }

    /// <summary>Every item of a paged Quartz listing, <see cref="PageSize"/> at a time.</summary>
    private static async Task<List<T>> AllPagesAsync<T>(Func<int, Task<PagedResult<T>>> page)
    {
        var items = new List<T>();
        for (var skip = 0; ; skip += PageSize)
        {
            var result = await page(skip);
            items.AddRange(result.Items);
            if (!result.HasMore)
            {
                return items;
            }
        }
    }
}
