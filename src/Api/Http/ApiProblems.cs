using Microsoft.AspNetCore.Mvc;
using Pipelines.Client;

namespace Pipelines.Api.Http;

/// <summary>An error answer on its way out: thrown anywhere in a request, written by <see cref="ApiExceptionHandler"/>.</summary>
public sealed class ApiProblemException(int status, string title, string detail, IReadOnlyList<ApiError> errors)
    : Exception(detail)
{
    public int Status { get; } = status;
    public string Title { get; } = title;
    public IReadOnlyList<ApiError> Errors { get; } = errors;

    /// <summary>Sent as <c>Retry-After</c>.</summary>
    public TimeSpan? RetryAfter { get; init; }
}

/// <summary>
/// RFC 7807 problem details, the body of every error answer: a title per kind of error, a detail
/// a person can act on, and <c>errors</c>, each naming its field. Never an exception's stack.
/// </summary>
public static class ApiProblems
{
    public static ApiProblemException Invalid(string field, string message) =>
        new(StatusCodes.Status400BadRequest, "The request is invalid", $"{field}: {message}", [new ApiError(field, message)]);

    public static ApiProblemException Unprocessable(string title, IReadOnlyList<ApiError> errors) =>
        new(StatusCodes.Status422UnprocessableEntity, title, string.Join("; ", errors), errors);

    public static ApiProblemException NotFound(string field, string message) =>
        new(StatusCodes.Status404NotFound, "Not found", message, [new ApiError(field, message)]);

    public static ApiProblemException Conflict(string field, string message) =>
        new(StatusCodes.Status409Conflict, "Conflict", message, [new ApiError(field, message)]);

    public static ApiProblemException TooLarge(long limit) =>
        new(StatusCodes.Status413PayloadTooLarge, "The request body is too large",
            $"request bodies are limited to {limit} bytes", [new ApiError("body", $"larger than {limit} bytes")]);

    /// <summary>The broker or the database does not answer; nothing the request asked for is lost.</summary>
    public static ApiProblemException Unavailable(string detail) =>
        new(StatusCodes.Status503ServiceUnavailable, "Service unavailable", detail, []) { RetryAfter = TimeSpan.FromSeconds(5) };

    public static ProblemDetails Create(int status, string title, string detail, IReadOnlyList<ApiError> errors)
    {
        var problem = new ProblemDetails { Status = status, Title = title, Detail = detail };
        if (errors.Count > 0)
        {
            problem.Extensions["errors"] = errors;
        }
        return problem;
    }

    public static IResult Result(ApiProblemException problem)
    {
        ArgumentNullException.ThrowIfNull(problem);
        return TypedResults.Problem(Create(problem.Status, problem.Title, problem.Message, problem.Errors));
    }

    public static async Task WriteAsync(HttpContext context, int status, string title, string detail, params IReadOnlyList<ApiError> errors)
    {
        ArgumentNullException.ThrowIfNull(context);
        context.Response.StatusCode = status;
        await context.RequestServices.GetRequiredService<IProblemDetailsService>().WriteAsync(new ProblemDetailsContext
        {
            HttpContext = context,
            ProblemDetails = Create(status, title, detail, errors),
        });
    }

    public static Task WriteAsync(HttpContext context, ApiProblemException problem)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(problem);
        if (problem.RetryAfter is { } retryAfter)
        {
            context.Response.Headers.RetryAfter = Math.Max(1, (int)Math.Ceiling(retryAfter.TotalSeconds)).ToString(System.Globalization.CultureInfo.InvariantCulture);
        }
        return WriteAsync(context, problem.Status, problem.Title, problem.Message, problem.Errors);
    }

    /// <summary>Problem details as the API writes them: <c>trace_id</c> in the API's snake_case.</summary>
    public static void Customize(ProblemDetailsContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var extensions = context.ProblemDetails.Extensions;
        if (extensions.Remove("traceId", out var traceId))
        {
            extensions["trace_id"] = traceId;
        }
        context.ProblemDetails.Instance ??= context.HttpContext.Request.Path;
        // Problems the framework writes (an unknown route, a wrong method) name what was wrong too.
        if (!extensions.ContainsKey("errors") && context.ProblemDetails.Status is { } status)
        {
            ApiError? error = status switch
            {
                StatusCodes.Status404NotFound => new("path", "no endpoint has this path"),
                StatusCodes.Status405MethodNotAllowed => new("method", $"{context.HttpContext.Request.Method} is not allowed on this path"),
                _ => null,
            };
            if (error is not null)
            {
                extensions["errors"] = new[] { error };
            }
        }
    }
}
