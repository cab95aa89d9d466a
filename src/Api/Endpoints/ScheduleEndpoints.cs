using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;
using Pipelines.Api.Http;
using Pipelines.Api.Mapping;
using Pipelines.Api.Security;
using Pipelines.Client;
using Pipelines.Scheduler.Schedules;

namespace Pipelines.Api.Endpoints;

/// <summary>
/// <c>/api/v1/schedules</c>: create, read, update, pause, resume, delete and list schedules. Changes
/// are written to the scheduler's store, where every running scheduler sees them within its poll
/// interval: no restart.
/// </summary>
public static class ScheduleEndpoints
{
    private const int MaxNextFireTimes = 100;

    public static RouteGroupBuilder MapScheduleEndpoints(this IEndpointRouteBuilder routes)
    {
        var group = routes.MapGroup("/schedules").WithTags("Schedules");
        group.MapGet("/", ListAsync).Describe(ApiScopes.RunsRead, "ListSchedules",
            "List schedules (of one pipeline, or all) with their next fire times, ordered by pipeline and name; page with cursor.", 400);
        group.MapPost("/", CreateAsync).Describe(ApiScopes.SchedulesWrite, "CreateSchedule",
            "Create a schedule; it fires on the running schedulers without a restart.", 400, 409, 422);
        var one = group.MapGroup("/{pipeline}/{name}");
        one.MapGet("/", GetAsync).Describe(ApiScopes.RunsRead, "GetSchedule",
            "One schedule with its next fire times.", 400, 404);
        one.MapPut("/", UpdateAsync).Describe(ApiScopes.SchedulesWrite, "UpdateSchedule",
            "Replace a schedule's definition (enabled included). A schedule from the definition file becomes an API schedule.", 400, 404, 422);
        one.MapDelete("/", DeleteAsync).Describe(ApiScopes.SchedulesWrite, "DeleteSchedule",
            "Delete a schedule and its queued fires; the runs it started are kept.", 404);
        one.MapPost("/pause", PauseAsync).Describe(ApiScopes.SchedulesWrite, "PauseSchedule",
            "Stop a schedule firing until it is resumed.", 404);
        one.MapPost("/resume", ResumeAsync).Describe(ApiScopes.SchedulesWrite, "ResumeSchedule",
            "Fire again from the next fire time after now; fires missed while paused are not made up.", 404);
        return group;
    }

    private static async Task<Ok<ScheduleList>> ListAsync(
        string? pipeline, int? next, int? limit, string? cursor, ScheduleService schedules, IOptions<ApiOptions> options, CancellationToken cancellationToken)
    {
        var size = limit ?? options.Value.DefaultPageSize;
        if (size < 1 || size > options.Value.MaxPageSize)
        {
            throw ApiProblems.Invalid("limit", $"must be between 1 and {options.Value.MaxPageSize}");
        }
        var page = await schedules.ListAsync(pipeline, size, string.IsNullOrEmpty(cursor) ? null : cursor, NextFireTimes(next, 1), cancellationToken);
        return TypedResults.Ok(new ScheduleList([.. page.Schedules.Select(s => s.ToSchedule())], page.NextCursor));
    }

    private static async Task<Created<Schedule>> CreateAsync(ScheduleSpec request, ScheduleService schedules, CancellationToken cancellationToken)
    {
        if (string.IsNullOrWhiteSpace(request.Pipeline))
        {
            throw ApiProblems.Unprocessable("The schedule is invalid", [new ApiError("pipeline", "is required")]);
        }
        var created = await schedules.CreateAsync(request.Pipeline, request.ToDefinition(request.Name ?? ""), cancellationToken);
        return TypedResults.Created(Path(created.Key), created.ToSchedule());
    }

    private static async Task<Ok<Schedule>> GetAsync(string pipeline, string name, int? next, ScheduleService schedules, CancellationToken cancellationToken)
    {
        var key = new ScheduleKey(pipeline, name);
        var description = await schedules.DescribeAsync(key, NextFireTimes(next, 5), cancellationToken) ?? throw new ScheduleNotFoundException(key);
        return TypedResults.Ok(description.ToSchedule());
    }

    private static async Task<Ok<Schedule>> UpdateAsync(string pipeline, string name, ScheduleSpec request, ScheduleService schedules, CancellationToken cancellationToken)
    {
        if (request.Pipeline is { Length: > 0 } other && other != pipeline)
        {
            throw ApiProblems.Unprocessable("The schedule is invalid",
                [new ApiError("pipeline", $"'{other}' differs from the schedule's pipeline, '{pipeline}'; a schedule cannot move to another pipeline")]);
        }
        var updated = await schedules.UpdateAsync(new ScheduleKey(pipeline, name), request.ToDefinition(request.Name ?? ""), cancellationToken);
        return TypedResults.Ok(updated.ToSchedule());
    }

    private static async Task<NoContent> DeleteAsync(string pipeline, string name, ScheduleService schedules, CancellationToken cancellationToken)
    {
        await schedules.DeleteAsync(new ScheduleKey(pipeline, name), cancellationToken);
        return TypedResults.NoContent();
    }

    private static async Task<Ok<Schedule>> PauseAsync(string pipeline, string name, ScheduleService schedules, CancellationToken cancellationToken) =>
        TypedResults.Ok((await schedules.PauseAsync(new ScheduleKey(pipeline, name), cancellationToken)).ToSchedule());

    private static async Task<Ok<Schedule>> ResumeAsync(string pipeline, string name, ScheduleService schedules, CancellationToken cancellationToken) =>
        TypedResults.Ok((await schedules.ResumeAsync(new ScheduleKey(pipeline, name), cancellationToken)).ToSchedule());

    private static int NextFireTimes(int? next, int fallback) => next switch
    {
        null => fallback,
        < 0 or > MaxNextFireTimes => throw ApiProblems.Invalid("next", $"must be between 0 and {MaxNextFireTimes}"),
        { } count => count,
    };

    private static string Path(ScheduleKey key) => $"/api/v1/schedules/{Uri.EscapeDataString(key.Pipeline)}/{Uri.EscapeDataString(key.Name)}";
}
