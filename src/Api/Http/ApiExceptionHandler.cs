using System.Data.Common;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Diagnostics;
using Npgsql;
using Pipelines.Client;
using Pipelines.Core.Coordination;
using Pipelines.Core.Planning;
using Pipelines.Core.Runs;
using Pipelines.Scheduler.Schedules;

namespace Pipelines.Api.Http;

/// <summary>
/// Turns every exception that leaves an endpoint into problem details: the errors of the engine
/// and the scheduler, bad JSON (naming the field by its path), an unreachable broker or database
/// (503, with <c>Retry-After</c>), and anything else (500 with a trace id; the exception goes to the
/// log, never to the client).
/// </summary>
public sealed partial class ApiExceptionHandler(ILogger<ApiExceptionHandler> logger) : IExceptionHandler
{
    public async ValueTask<bool> TryHandleAsync(HttpContext httpContext, Exception exception, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(httpContext);
        if (exception is OperationCanceledException && httpContext.RequestAborted.IsCancellationRequested)
        {
            return true; // the client went away; there is no one to answer
        }
        var problem = Map(exception);
        if (problem is null)
        {
            logger.RequestFailed(exception, httpContext.Request.Method, httpContext.Request.Path);
            problem = new ApiProblemException(StatusCodes.Status500InternalServerError, "Internal error",
                "The server failed to answer this request; its log has the details under this trace id.", []);
        }
        else if (problem.Status == StatusCodes.Status503ServiceUnavailable)
        {
            logger.Unavailable(exception, httpContext.Request.Method, httpContext.Request.Path);
        }
        if (httpContext.Response.HasStarted)
        {
            return true; // a streamed answer (a followed log) broke off; it cannot become a problem now
        }
        httpContext.Response.Clear();
        await ApiProblems.WriteAsync(httpContext, problem);
        return true;
    }

    public static ApiProblemException? Map(Exception exception) => exception switch
    {
        ApiProblemException problem => problem,
        BadHttpRequestException bad => FromBadRequest(bad),
        InvalidRunInputException input => ApiProblems.Unprocessable("The payload does not fit the pipeline's parameters",
            [.. input.Problems.Select(p => new ApiError(p.Field is null ? "payload" : $"payload.{p.Field}", p.Message))]),
        ReservedIdempotencyKeyException reserved => ApiProblems.Invalid("Idempotency-Key", reserved.Message),
        UnknownPipelineException unknown => ApiProblems.NotFound("pipeline", unknown.Message),
        RunNotFoundException notFound => ApiProblems.NotFound("run_id", notFound.Message),
        InvalidRunStateException state => ApiProblems.Conflict("state", state.Message),
        InvalidCursorException cursor => ApiProblems.Invalid("cursor", cursor.Message),
        InvalidScheduleException schedule => ApiProblems.Unprocessable("The schedule is invalid",
            [.. schedule.Problems.Select(p => new ApiError(p.Field, p.Message))]),
        ScheduleNotFoundException notFound => ApiProblems.NotFound("name", notFound.Message),
        ScheduleAlreadyExistsException exists => ApiProblems.Conflict("name", exists.Message),
        _ when IsOutage(exception) => ApiProblems.Unavailable(
            "The message broker or the database is unreachable. Nothing accepted is lost: try again later (with the same Idempotency-Key when starting a run)."),
        _ => null,
    };

    /// <summary>True when the exception, or one inside it, says the broker or the database does not answer.</summary>
    public static bool IsOutage(Exception? exception) => exception switch
    {
        null => false,
        MassTransit.ConnectionException or TimeoutException => true,
        NpgsqlException { IsTransient: true } => true,
        NpgsqlException { InnerException: System.Net.Sockets.SocketException or IOException } => true,
        // SQLITE_BUSY, SQLITE_LOCKED, SQLITE_IOERR, SQLITE_CANTOPEN
        Microsoft.Data.Sqlite.SqliteException { SqliteErrorCode: 5 or 6 or 10 or 14 } => true,
        DbException or AggregateException or InvalidOperationException or Quartz.SchedulerException or Microsoft.EntityFrameworkCore.DbUpdateException
            => exception is AggregateException aggregate ? aggregate.InnerExceptions.Any(IsOutage) : IsOutage(exception.InnerException),
        _ => false,
    };

    private static ApiProblemException FromBadRequest(BadHttpRequestException bad)
    {
        if (bad.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            return new ApiProblemException(413, "The request body is too large", bad.Message, [new ApiError("body", bad.Message)]);
        }
        if (bad.StatusCode == StatusCodes.Status415UnsupportedMediaType)
        {
            return new ApiProblemException(415, "Unsupported media type", "send the body as JSON with 'Content-Type: application/json'",
                [new ApiError("Content-Type", "expected application/json")]);
        }
        if (bad.InnerException is JsonException json)
        {
            return FromJson(json);
        }
        var message = bad.Message;
        if (RequiredBody().IsMatch(message))
        {
            return ApiProblems.Invalid("body", "a JSON body is required");
        }
        if (BindFailure().Match(message) is { Success: true } failure)
        {
            var name = failure.Groups["name"].Value;
            return ApiProblems.Invalid(FieldOfParameter(name), $"'{failure.Groups["value"].Value}' is not {Friendly(failure.Groups["type"].Value)}");
        }
        if (RequiredParameter().Match(message) is { Success: true } missing)
        {
            return ApiProblems.Invalid(FieldOfParameter(missing.Groups["name"].Value), "is required");
        }
        return ApiProblems.Invalid("request", "the request could not be read");
    }

    /// <summary>A JSON body that did not parse or bind: the field by its path, and what was expected there.</summary>
    public static ApiProblemException FromJson(JsonException json)
    {
        ArgumentNullException.ThrowIfNull(json);
        var field = FieldOfPath(json.Path);
        var where = json.LineNumber is { } line ? $" (line {line + 1}, column {(json.BytePositionInLine ?? 0) + 1})" : "";
        var text = json.Message;
        string message;
        if (Unmapped().Match(text) is { Success: true } unmapped)
        {
            var name = unmapped.Groups["name"].Value;
            field = field == "body" ? name : field.EndsWith(name, StringComparison.Ordinal) ? field : $"{field}.{name}";
            message = "is not a field of this request";
        }
        else if (Converted().Match(text) is { Success: true } converted)
        {
            message = $"expected {Friendly(converted.Groups["type"].Value)}{where}";
        }
        else if (text.Contains("maximum configured depth", StringComparison.Ordinal) && Depth().Match(text) is { Success: true } depth)
        {
            message = $"nested deeper than {depth.Groups["depth"].Value} levels{where}";
        }
        else if (text.Contains("missing required properties", StringComparison.Ordinal))
        {
            message = "is missing required fields";
        }
        else
        {
            message = $"malformed JSON{where}";
        }
        return ApiProblems.Invalid(field, message);
    }

    /// <summary><c>$.payload.day</c> → <c>payload.day</c>; the root is <c>body</c>.</summary>
    private static string FieldOfPath(string? path) =>
        path is null or "$" ? "body" : path.StartsWith("$.", StringComparison.Ordinal) ? path[2..] : path.TrimStart('$');

    private static string FieldOfParameter(string name) => name switch
    {
        "idempotencyKey" => "Idempotency-Key",
        "lastEventId" => "Last-Event-ID",
        _ => JsonNamingPolicy.SnakeCaseLower.ConvertName(name),
    };

    private static string Friendly(string type)
    {
        var name = type.TrimEnd('?');
        if (NullableOf().Match(name) is { Success: true } inner)
        {
            name = inner.Groups["type"].Value;
        }
        name = name.Replace("System.", "", StringComparison.Ordinal);
        return name switch
        {
            "String" or "string" => "a string",
            "Int32" or "Int64" or "int" or "long" => "an integer",
            "Double" or "Decimal" or "double" or "decimal" => "a number",
            "Boolean" or "bool" => "true or false",
            "Guid" => "a UUID",
            "DateTimeOffset" => "an ISO 8601 date and time, e.g. 2026-01-01T00:00:00Z",
            "Text.Json.Nodes.JsonObject" => "a JSON object",
            "Text.Json.Nodes.JsonArray" => "a JSON array",
            _ when EnumValues(name) is { } values => $"one of {values}",
            _ => "a value of the right type",
        };
    }

    private static string? EnumValues(string typeName)
    {
        var type = AppDomain.CurrentDomain.GetAssemblies()
            .Where(a => a.GetName().Name?.StartsWith("Pipelines", StringComparison.Ordinal) == true)
            .Select(a => a.GetType(typeName) ?? a.GetType("Pipelines." + typeName))
            .FirstOrDefault(t => t is not null);
        return type is { IsEnum: true }
            ? string.Join(", ", Enum.GetNames(type).Select(JsonNamingPolicy.SnakeCaseLower.ConvertName))
            : null;
    }

    [GeneratedRegex("^(Required parameter \".+\" was not provided from body|Implicit body inferred for parameter \".+\" but no body was provided)")]
    private static partial Regex RequiredBody();

    [GeneratedRegex("^Required parameter \"(?<type>[^\"]+) (?<name>\\w+)\" was not provided")]
    private static partial Regex RequiredParameter();

    [GeneratedRegex("^Failed to bind parameter \"(?<type>[^\"]+) (?<name>\\w+)\" from \"(?<value>.*)\"")]
    private static partial Regex BindFailure();

    [GeneratedRegex("The JSON property '(?<name>[^']*)' could not be mapped")]
    private static partial Regex Unmapped();

    [GeneratedRegex("could not be converted to (?<type>[\\w.`\\[\\], =]+?)\\. Path")]
    private static partial Regex Converted();

    [GeneratedRegex("maximum configured depth of (?<depth>\\d+)")]
    private static partial Regex Depth();

    [GeneratedRegex("^(System\\.Nullable`1\\[\\[?(?<type>[\\w.]+)[,\\]]|Nullable<(?<type>[\\w.]+)>)")]
    private static partial Regex NullableOf();
}
