using System.Net;

namespace Pipelines.Client;

/// <summary>The API answered with an error; <see cref="Problem"/> says what, and which field.</summary>
public sealed class PipelinesApiException : Exception
{
    public PipelinesApiException(HttpStatusCode status, ApiProblem? problem, Exception? inner = null)
        : base(MessageOf(status, problem), inner)
    {
        Status = status;
        Problem = problem;
    }

    public PipelinesApiException()
        : this(HttpStatusCode.InternalServerError, null)
    {
    }

    public PipelinesApiException(string message)
        : base(message)
    {
    }

    public PipelinesApiException(string message, Exception inner)
        : base(message, inner)
    {
    }

    public HttpStatusCode Status { get; }

    /// <summary>The problem details the API sent; null when the body was not problem details (a proxy's error page).</summary>
    public ApiProblem? Problem { get; }

    /// <summary>When the API asked to wait before trying again (429, 503).</summary>
    public TimeSpan? RetryAfter { get; init; }

    private static string MessageOf(HttpStatusCode status, ApiProblem? problem)
    {
        var text = $"{(int)status} {problem?.Title ?? status.ToString()}";
        if (problem?.Detail is { Length: > 0 } detail)
        {
            text += $": {detail}";
        }
        if (problem?.Errors is { Count: > 0 } errors)
        {
            text += $" ({string.Join("; ", errors)})";
        }
        return text;
    }
}
