using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Pipelines.Api.Http;
using Pipelines.Api.Mapping;
using Pipelines.Api.Security;
using Pipelines.Client;
using Pipelines.Core.Definitions;
using Pipelines.Core.Planning;

namespace Pipelines.Api.Endpoints;

/// <summary><c>/api/v1/pipelines</c>: the deployment's pipelines, their steps and graphs; validating a definition.</summary>
public static class PipelineEndpoints
{
    /// <summary>Where the relative paths of a posted definition would start; it is never read.</summary>
    private const string PostedBaseDirectory = "/posted-definition";

    public static RouteGroupBuilder MapPipelineEndpoints(this IEndpointRouteBuilder routes)
    {
        var group = routes.MapGroup("/pipelines").WithTags("Pipelines");
        group.MapGet("/", List).Describe(ApiScopes.RunsRead, "ListPipelines",
            "List the pipelines of the definition file.");
        group.MapGet("/{name}", Get).Describe(ApiScopes.RunsRead, "GetPipeline",
            "One pipeline: parameters, steps (secrets masked), declared schedules, and its graph as Mermaid and as nodes and edges.", 404);
        group.MapPost("/validate", ValidateAsync).Describe(ApiScopes.RunsRead, "ValidateDefinition",
                "Check a definition file (YAML, JSON or copili's format) without storing it; errors come with line and column.", 400, 413, 422)
            .WithDescription("The server's environment is not used for ${VAR}: pass values as var=NAME=VALUE query parameters.")
            .Accepts<string>("application/yaml", "application/json", "text/plain", "*/*");
        return group;
    }

    private static Ok<PipelineList> List(PipelineCatalog catalog) =>
        TypedResults.Ok(new PipelineList([.. catalog.Pipelines.OrderBy(p => p.Definition.Name, StringComparer.Ordinal).Select(p => p.ToSummary())]));

    private static Ok<Pipeline> Get(string name, PipelineCatalog catalog)
    {
        try
        {
            return TypedResults.Ok(catalog.Get(name).ToPipeline());
        }
        catch (UnknownPipelineException unknown)
        {
            throw ApiProblems.NotFound("name", unknown.Message);
        }
    }

    private static async Task<Ok<DefinitionValidation>> ValidateAsync(
        HttpRequest request, [FromQuery(Name = "var")] string[]? variables, CancellationToken cancellationToken)
    {
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var assignment in variables ?? [])
        {
            var equals = assignment.IndexOf('=', StringComparison.Ordinal);
            if (equals <= 0)
            {
                throw ApiProblems.Invalid("var", $"'{assignment}' is not NAME=VALUE");
            }
            values[assignment[..equals]] = assignment[(equals + 1)..];
        }
        using var body = new MemoryStream();
        await request.Body.CopyToAsync(body, cancellationToken);
        // Only the variables given: the server's environment could otherwise leak through an error message.
        var result = new PipelineLoader(new PipelineLoaderOptions { Variables = values })
            .Load(body.GetBuffer().AsSpan(0, (int)body.Length), "definition", PostedBaseDirectory);
        if (!result.Succeeded)
        {
            throw ApiProblems.Unprocessable("The definition is invalid", [.. result.Errors.Select(ToError)]);
        }
        return TypedResults.Ok(new DefinitionValidation(
            true,
            [.. result.Definitions!.Pipelines.Keys.Order(StringComparer.Ordinal)],
            [.. result.Warnings.Select(ToError)]));
    }

    private static ApiError ToError(DefinitionError error) =>
        new("body", error.Message) { Line = error.Position.Line, Column = error.Position.Column };
}
