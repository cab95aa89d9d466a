using Pipelines.Api.Hosting;

namespace Pipelines.Api;

/// <summary>The API host's log events, 6000–6099. Never a key, a hash or a payload.</summary>
internal static partial class ApiLog
{
    [LoggerMessage(EventId = 6000, Level = LogLevel.Information, Message = "Pipelines ({Roles}) listening on {Url}")]
    public static partial void Listening(this ILogger logger, string roles, string url);

    [LoggerMessage(EventId = 6001, Level = LogLevel.Information, Message = "API reference: {Url}/scalar  ·  OpenAPI document: {Url}/openapi/v1.json")]
    public static partial void Reference(this ILogger logger, string url);

    [LoggerMessage(EventId = 6002, Level = LogLevel.Warning,
        Message = "No API keys are configured (Pipelines:Api:Keys): the API is OPEN, without authentication, to clients on this machine only. Configure keys before listening anywhere else; see docs/api.md")]
    public static partial void OpenOnLoopback(this ILogger logger);

    [LoggerMessage(EventId = 6003, Level = LogLevel.Information, Message = "API keys configured: {Count}")]
    public static partial void KeysConfigured(this ILogger logger, int count);

    [LoggerMessage(EventId = 6010, Level = LogLevel.Error, Message = "Request {Method} {Path} failed; answered 500")]
    public static partial void RequestFailed(this ILogger logger, Exception exception, string method, string path);

    [LoggerMessage(EventId = 6011, Level = LogLevel.Warning, Message = "Request {Method} {Path}: the broker or the database is unavailable; answered 503")]
    public static partial void Unavailable(this ILogger logger, Exception exception, string method, string path);

    [LoggerMessage(EventId = 6020, Level = LogLevel.Information, Message = "Run {RunId} of '{Pipeline}' started through the API by '{Caller}'")]
    public static partial void RunStarted(this ILogger logger, Guid runId, string pipeline, string caller);

    [LoggerMessage(EventId = 6021, Level = LogLevel.Warning, Message = "Rate limit reached for '{Partition}'; answered 429")]
    public static partial void RateLimited(this ILogger logger, string partition);

    public static string Describe(this PipelinesRoles roles) => PipelinesRolesConfiguration.Describe(roles);
}
