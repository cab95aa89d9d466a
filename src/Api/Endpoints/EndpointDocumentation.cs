namespace Pipelines.Api.Endpoints;

internal static class EndpointDocumentation
{
    /// <summary>
    /// The scope an endpoint needs, its name and summary in the OpenAPI document, and the problem
    /// statuses it may answer besides 401, 403 and 429, which every endpoint may.
    /// </summary>
    public static RouteHandlerBuilder Describe(this RouteHandlerBuilder endpoint, string scope, string name, string summary, params int[] problems)
    {
        endpoint.RequireAuthorization(scope).WithName(name).WithSummary(summary);
        foreach (var status in problems.Concat([StatusCodes.Status401Unauthorized, StatusCodes.Status403Forbidden, StatusCodes.Status429TooManyRequests]))
        {
            endpoint.ProducesProblem(status);
        }
        return endpoint;
    }
}
