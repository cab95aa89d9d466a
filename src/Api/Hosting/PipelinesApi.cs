using System.Globalization;
using System.Security.Claims;
using System.Text.Json.Serialization;
using System.Threading.RateLimiting;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Http.Json;
using Microsoft.AspNetCore.RateLimiting;
using Microsoft.Extensions.Options;
using Microsoft.OpenApi;
using Pipelines.Api.Endpoints;
using Pipelines.Api.Http;
using Pipelines.Api.Security;
using Pipelines.Client;
using Pipelines.Scheduler.Schedules;
using Scalar.AspNetCore;

namespace Pipelines.Api.Hosting;

public static class PipelinesApi
{
    /// <summary>
    /// Everything the HTTP side needs: <c>Pipelines:Api</c> options, API-key authentication and a
    /// policy per scope, problem details for every error, the body/depth caps, per-key rate limits,
    /// the broker gate, the minimum schedule interval, and the OpenAPI document.
    /// </summary>
    public static WebApplicationBuilder AddPipelinesApi(this WebApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var services = builder.Services;
        services.AddOptions<ApiOptions>().BindConfiguration(ApiOptions.Section).ValidateOnStart();
        services.AddSingleton<IValidateOptions<ApiOptions>, ApiOptionsValidator>();
        services.AddSingleton<ApiKeys>();
        services.AddSingleton<BrokerGate>();
        services.AddSingleton<IScheduleRule>(sp => new MinimumIntervalRule(sp.GetRequiredService<IOptions<ApiOptions>>().Value.MinimumScheduleInterval));

        services.AddProblemDetails(o => o.CustomizeProblemDetails = ApiProblems.Customize);
        services.AddExceptionHandler<ApiExceptionHandler>();
        // Bad input reaches the exception handler, which names the field, instead of a bare 400.
        services.Configure<RouteHandlerOptions>(o => o.ThrowOnBadRequest = true);
        // Read here rather than through IOptions, so that bad settings are reported by the start-up check, not by the first JSON written.
        var limits = builder.Configuration.GetSection(ApiOptions.Section).Get<ApiOptions>() ?? new ApiOptions();
        services.AddOptions<JsonOptions>().Configure(json =>
        {
            PipelinesJson.Configure(json.SerializerOptions);
            json.SerializerOptions.MaxDepth = Math.Clamp(limits.MaxJsonDepth, 4, 256);
            json.SerializerOptions.NumberHandling = JsonNumberHandling.Strict;
            json.SerializerOptions.UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow;
        });
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.Limits.MaxRequestBodySize = limits.MaxRequestBodyBytes);

        services.AddAuthentication(ApiKeyAuthenticationHandler.SchemeName)
            .AddScheme<AuthenticationSchemeOptions, ApiKeyAuthenticationHandler>(ApiKeyAuthenticationHandler.SchemeName, null);
        services.AddAuthorization(ApiAuthorization.AddScopePolicies);
        services.AddRateLimiter(ConfigureRateLimits);

        services.AddOpenApi(o => o.AddDocumentTransformer((document, _, _) =>
        {
            document.Info = new OpenApiInfo
            {
                Title = "Pipelines API",
                Version = "v1",
                Description = "Start, watch, cancel and retry pipeline runs; read logs, outputs and statistics; manage schedules. Errors are RFC 7807 problem details naming the field.",
            };
            document.Components ??= new OpenApiComponents();
            document.Components.SecuritySchemes ??= new Dictionary<string, IOpenApiSecurityScheme>();
            document.Components.SecuritySchemes["ApiKey"] = new OpenApiSecurityScheme
            {
                Type = SecuritySchemeType.Http,
                Scheme = "bearer",
                Description = "An API key, sent as 'Authorization: Bearer KEY'.",
            };
            document.Security = [new OpenApiSecurityRequirement { [new OpenApiSecuritySchemeReference("ApiKey", document)] = [] }];
            return Task.CompletedTask;
        }));
        return builder;
    }

    /// <summary>
    /// The middleware, in order: problems for errors, authentication, rate limits, authorization,
    /// then the checks of the request's text and body — so that a missing or wrong key is a 401 and a
    /// missing scope a 403 whatever else is wrong with the request.
    /// </summary>
    public static WebApplication UsePipelinesApi(this WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        app.UseExceptionHandler();
        app.UseStatusCodePages();
        app.UseAuthentication();
        app.UseRateLimiter();
        app.UseAuthorization();
        // Only for a request an endpoint will answer: any other is a 404, whatever its query or body.
        app.UseWhen(context => context.GetEndpoint() is not null, checks =>
        {
            checks.UseMiddleware<QueryTextCheck>();
            // After authorization, so that an anonymous client cannot make the server buffer a body.
            checks.UseMiddleware<RequestBodyLimit>();
        });
        return app;
    }

    /// <summary>Health checks always; the API, its OpenAPI document and its reference page with the api role.</summary>
    public static WebApplication MapPipelinesEndpoints(this WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        app.MapHealthEndpoints();
        if (!app.Services.GetRequiredService<HostedRoles>().Has(PipelinesRoles.Api))
        {
            return app;
        }
        var api = app.MapGroup("/api/v1");
        api.MapPipelineEndpoints();
        api.MapRunEndpoints();
        api.MapScheduleEndpoints();
        ContentTypeAfterAuthorization.Apply(api);
        app.MapOpenApi().AllowAnonymous();
        app.MapScalarApiReference(o => o.WithTitle("Pipelines API")).AllowAnonymous();
        app.MapGet("/", () => TypedResults.Redirect("/scalar")).ExcludeFromDescription().AllowAnonymous();
        return app;
    }

    /// <summary>A fixed window per minute for each key (or, unauthenticated, each client address); 429 with <c>Retry-After</c> past it.</summary>
    private static void ConfigureRateLimits(RateLimiterOptions options)
    {
        options.GlobalLimiter = PartitionedRateLimiter.Create<HttpContext, string>(context =>
        {
            var api = context.RequestServices.GetRequiredService<IOptions<ApiOptions>>().Value;
            var name = context.User.FindFirstValue(ClaimTypes.Name);
            var key = name is null ? null : context.RequestServices.GetRequiredService<ApiKeys>().FindByName(name);
            var partition = name is null ? $"address:{context.Connection.RemoteIpAddress}" : $"key:{name}";
            var permits = key?.RequestsPerMinute ?? api.RequestsPerMinute;
            return RateLimitPartition.GetFixedWindowLimiter(partition, _ => new FixedWindowRateLimiterOptions
            {
                PermitLimit = permits,
                Window = TimeSpan.FromMinutes(1),
                QueueLimit = 0,
            });
        });
        options.OnRejected = async (context, cancellationToken) =>
        {
            var http = context.HttpContext;
            var retryAfter = context.Lease.TryGetMetadata(MetadataName.RetryAfter, out var wait) ? wait : TimeSpan.FromMinutes(1);
            http.Response.Headers.RetryAfter = Math.Max(1, (int)Math.Ceiling(retryAfter.TotalSeconds)).ToString(CultureInfo.InvariantCulture);
            var caller = http.User.FindFirstValue(ClaimTypes.Name) ?? "an anonymous client";
            http.RequestServices.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(PipelinesApi)).RateLimited(caller);
            await ApiProblems.WriteAsync(http, StatusCodes.Status429TooManyRequests, "Too many requests",
                $"The rate limit of this API key is reached; try again in {http.Response.Headers.RetryAfter} s.",
                new ApiError("Authorization", "this key's requests per minute are used up"));
        };
    }
}
