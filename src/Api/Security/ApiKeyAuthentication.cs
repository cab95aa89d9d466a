using System.Security.Claims;
using System.Text.Encodings.Web;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authorization;
using Microsoft.Extensions.Options;
using Pipelines.Api.Http;
using Pipelines.Client;

namespace Pipelines.Api.Security;

/// <summary>
/// <c>Authorization: Bearer KEY</c>. A missing, malformed or unknown key is a 401 that says only
/// that a valid key is needed; a key without the scope an endpoint needs is a 403 naming the scope.
/// With no key configured, loopback clients get every scope and anyone else a 401.
/// </summary>
public sealed class ApiKeyAuthenticationHandler(
    IOptionsMonitor<AuthenticationSchemeOptions> options, ILoggerFactory logger, UrlEncoder encoder, ApiKeys keys)
    : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
{
    public const string SchemeName = "ApiKey";

    /// <summary>The principal of a loopback client when no key is configured.</summary>
    public const string LocalName = "local";

    protected override Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        if (keys.IsOpen)
        {
            return Task.FromResult(ApiKeys.IsLoopback(Context.Connection.RemoteIpAddress)
                ? Success(LocalName, [ApiScopes.Admin])
                : AuthenticateResult.NoResult());
        }
        var header = Request.Headers.Authorization.ToString();
        if (header.Length == 0)
        {
            return Task.FromResult(AuthenticateResult.NoResult());
        }
        const string bearer = "Bearer ";
        if (!header.StartsWith(bearer, StringComparison.OrdinalIgnoreCase) || keys.Find(header[bearer.Length..].Trim()) is not { } key)
        {
            return Task.FromResult(AuthenticateResult.Fail("invalid API key"));
        }
        return Task.FromResult(Success(key.Name, key.Scopes));
    }

    private static AuthenticateResult Success(string name, IEnumerable<string> scopes)
    {
        var claims = scopes.Select(s => new Claim(ApiScopes.ClaimType, s)).Prepend(new Claim(ClaimTypes.Name, name));
        var principal = new ClaimsPrincipal(new ClaimsIdentity(claims, SchemeName));
        return AuthenticateResult.Success(new AuthenticationTicket(principal, SchemeName));
    }

    protected override Task HandleChallengeAsync(AuthenticationProperties properties)
    {
        Response.Headers.WWWAuthenticate = "Bearer realm=\"pipelines\"";
        var detail = keys.IsOpen
            ? "No API key is configured, so this server answers clients on its own machine only."
            : "Send a valid API key as 'Authorization: Bearer KEY'.";
        return ApiProblems.WriteAsync(Context, StatusCodes.Status401Unauthorized, "Unauthorized", detail, new ApiError("Authorization", "a valid API key is required"));
    }

    protected override Task HandleForbiddenAsync(AuthenticationProperties properties)
    {
        var scope = Context.GetEndpoint()?.Metadata.GetOrderedMetadata<IAuthorizeData>().Select(a => a.Policy).LastOrDefault(p => p is not null);
        var detail = scope is null
            ? "The API key may not do this."
            : $"The API key lacks the scope '{scope}' (or '{ApiScopes.Admin}').";
        return ApiProblems.WriteAsync(Context, StatusCodes.Status403Forbidden, "Forbidden", detail, new ApiError("Authorization", detail));
    }
}

public static class ApiAuthorization
{
    /// <summary>One policy per scope, named as the scope; <c>admin</c> satisfies all. Endpoints without a policy need an authenticated caller.</summary>
    public static void AddScopePolicies(AuthorizationOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        foreach (var scope in ApiScopes.All)
        {
            options.AddPolicy(scope, policy => policy
                .AddAuthenticationSchemes(ApiKeyAuthenticationHandler.SchemeName)
                .RequireAuthenticatedUser()
                .RequireAssertion(context =>
                    context.User.HasClaim(ApiScopes.ClaimType, scope) || context.User.HasClaim(ApiScopes.ClaimType, ApiScopes.Admin)));
        }
        options.FallbackPolicy = new AuthorizationPolicyBuilder(ApiKeyAuthenticationHandler.SchemeName).RequireAuthenticatedUser().Build();
    }
}
