namespace Pipelines.Client;

/// <summary>
/// One thing wrong with a request: the field it concerns — a JSON path into the body such as
/// <c>payload.day</c>, a query or path parameter such as <c>limit</c>, or a header such as
/// <c>Idempotency-Key</c> — and what is wrong. A problem in a posted definition also has its line
/// and column.
/// </summary>
public sealed record ApiError(string Field, string Message)
{
    public int? Line { get; init; }
    public int? Column { get; init; }

    public override string ToString() => Line is { } line ? $"{Field}:{line}:{Column}: {Message}" : $"{Field}: {Message}";
}

/// <summary>An RFC 7807 problem details document, as every error response of the API is.</summary>
public sealed record ApiProblem
{
    public string? Type { get; init; }
    public string? Title { get; init; }
    public int? Status { get; init; }
    public string? Detail { get; init; }
    public string? Instance { get; init; }
    public IReadOnlyList<ApiError> Errors { get; init; } = [];

    /// <summary>Names the request in the server's log.</summary>
    public string? TraceId { get; init; }
}
