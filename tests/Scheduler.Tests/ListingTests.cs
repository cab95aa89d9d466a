using Pipelines.Core.Definitions;
using Pipelines.Core.Runs;
using Pipelines.Tests;

namespace Pipelines.Scheduler.Tests;

/// <summary>Listing schedules a page at a time.</summary>
public sealed class ListingTests(ScratchDatabase database) : IClassFixture<ScratchDatabase>
{
    [ServiceFact]
    public async Task schedules_are_listed_a_page_at_a_time_and_one_created_between_pages_shifts_none()
    {
        await using var api = await SchedulerTestHost.StartAsync(SchedulerTestHost.Catalog(Pipelines.Report), database.Options, fires: false);
        foreach (var name in new[] { "e", "a", "c", "d", "b" })
        {
            await api.Schedules.CreateAsync("report", new ScheduleDefinition { Name = name, Cron = "0 3 * * *" });
        }

        var first = await api.Schedules.ListAsync("report", limit: 2);
        // Sorts into the page already read: the next page starts after "b" all the same.
        await api.Schedules.CreateAsync("report", new ScheduleDefinition { Name = "aa", Cron = "0 3 * * *" });
        var second = await api.Schedules.ListAsync("report", limit: 2, first.NextCursor);
        var last = await api.Schedules.ListAsync("report", limit: 2, second.NextCursor);

        Assert.Equal(["a", "b"], first.Schedules.Select(s => s.Key.Name));
        Assert.Equal(["c", "d"], second.Schedules.Select(s => s.Key.Name));
        Assert.Equal(["e"], last.Schedules.Select(s => s.Key.Name));
        Assert.Null(last.NextCursor);
        Assert.Single(first.Schedules[0].NextFireTimes);
        var refused = await Assert.ThrowsAsync<InvalidCursorException>(() => api.Schedules.ListAsync("report", limit: 2, "not-a-cursor"));
        Assert.Contains("start again without it", refused.Message, StringComparison.Ordinal);
    }
}
