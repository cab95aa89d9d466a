namespace Pipelines.Api.Http;

/// <summary>
/// Refuses a NUL character in any query parameter, for every endpoint, with a 400 naming the
/// parameter: no name, filter or cursor of this API holds one, and PostgreSQL refuses NUL in text,
/// so such a value would otherwise reach the database and fail there as a 500. Runs after
/// authorization, so a caller without a valid key or scope is told only that.
/// </summary>
public sealed class QueryTextCheck(RequestDelegate next)
{
    public Task InvokeAsync(HttpContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        foreach (var (name, values) in context.Request.Query)
        {
            if (name.Contains('\0', StringComparison.Ordinal))
            {
                return ApiProblems.WriteAsync(context, ApiProblems.Invalid("query", "a parameter name contains a NUL character (%00)"));
            }
            if (values.Any(v => v?.Contains('\0', StringComparison.Ordinal) == true))
            {
                return ApiProblems.WriteAsync(context, ApiProblems.Invalid(name, "must not contain a NUL character (%00)"));
            }
        }
        return next(context);
    }
}
