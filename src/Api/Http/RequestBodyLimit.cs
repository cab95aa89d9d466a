using System.Buffers;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Options;
using Pipelines.Api.Security;

namespace Pipelines.Api.Http;

/// <summary>
/// Holds every request body to <see cref="ApiOptions.MaxRequestBodyBytes"/>: a declared length above
/// it is refused before anything is read, and a chunked body is read into memory up to the limit,
/// so the endpoint sees a body of known, bounded length or the client gets a 413.
/// </summary>
public sealed class RequestBodyLimit(RequestDelegate next, IOptions<ApiOptions> options)
{
    private readonly long _limit = options.Value.MaxRequestBodyBytes;

    public async Task InvokeAsync(HttpContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var request = context.Request;
        if (request.ContentLength > _limit)
        {
            await ApiProblems.WriteAsync(context, ApiProblems.TooLarge(_limit));
            return;
        }
        var canHaveBody = context.Features.Get<IHttpRequestBodyDetectionFeature>()?.CanHaveBody ?? request.Headers.TransferEncoding.Count > 0;
        if (request.ContentLength is null && canHaveBody)
        {
            var buffered = await ReadAsync(request.Body, context.RequestAborted);
            if (buffered is null)
            {
                await ApiProblems.WriteAsync(context, ApiProblems.TooLarge(_limit));
                return;
            }
            request.Body = buffered;
            request.ContentLength = buffered.Length;
            context.Response.RegisterForDisposeAsync(buffered);
        }
        await next(context);
    }

    /// <returns>Null when the body is longer than the limit.</returns>
    private async Task<MemoryStream?> ReadAsync(Stream body, CancellationToken cancellationToken)
    {
        var buffered = new MemoryStream();
        var chunk = ArrayPool<byte>.Shared.Rent(16 * 1024);
        try
        {
            int read;
            while ((read = await body.ReadAsync(chunk, cancellationToken)) > 0)
            {
                if (buffered.Length + read > _limit)
                {
                    await buffered.DisposeAsync();
                    return null;
                }
                buffered.Write(chunk, 0, read);
            }
            buffered.Position = 0;
            return buffered;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(chunk);
        }
    }
}
