using Microsoft.AspNetCore.Http.Metadata;

namespace Pipelines.Api.Http;

/// <summary>
/// Leaves the check of a body's content type to the endpoint, after authorization. Routing would
/// otherwise answer a JSON endpoint's wrong content type with a 415 endpoint of its own, one that
/// carries no scope: a key without the endpoint's scope would be told 415 instead of 403. Added last
/// to an endpoint's metadata, it is the one routing reads (no content types: any may match); it
/// keeps the body's type, and the OpenAPI document lists JSON for it. The endpoint answers 415 itself when it binds the
/// body (<see cref="ApiExceptionHandler"/>).
/// </summary>
public sealed class ContentTypeAfterAuthorization(IAcceptsMetadata declared) : IAcceptsMetadata
{
    public IReadOnlyList<string> ContentTypes { get; } = [];

    public Type? RequestType => declared.RequestType;

    public bool IsOptional => declared.IsOptional;

    public static void Apply(IEndpointConventionBuilder endpoints)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        endpoints.Finally(endpoint =>
        {
            // An endpoint that takes any content type (*/*) never meets routing's 415.
            if (endpoint.Metadata.OfType<IAcceptsMetadata>().LastOrDefault() is { ContentTypes.Count: > 0 } declared && !declared.ContentTypes.Contains("*/*"))
            {
                endpoint.Metadata.Add(new ContentTypeAfterAuthorization(declared));
            }
        });
    }
}
