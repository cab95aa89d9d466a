namespace Pipelines.Api.Security;

/// <summary>What an API key may do. <see cref="Admin"/> may do everything.</summary>
public static class ApiScopes
{
    /// <summary>Start, cancel and retry runs.</summary>
    public const string RunsWrite = "runs:write";

    /// <summary>Read runs, logs, statistics, pipelines and schedules; validate definitions.</summary>
    public const string RunsRead = "runs:read";

    /// <summary>Create, change, pause, resume and delete schedules.</summary>
    public const string SchedulesWrite = "schedules:write";

    /// <summary>Every scope.</summary>
    public const string Admin = "admin";

    public static IReadOnlyList<string> All { get; } = [RunsWrite, RunsRead, SchedulesWrite, Admin];

    /// <summary>The claim type each of a key's scopes is carried in.</summary>
    public const string ClaimType = "scope";
}
