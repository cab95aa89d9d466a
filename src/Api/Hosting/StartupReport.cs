using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Options;
using Pipelines.Api.Security;

namespace Pipelines.Api.Hosting;

/// <summary>
/// Once the server listens: prints where, and what this process hosts; with no API key configured,
/// says the API is open and refuses to run if any address it listens on is not loopback.
/// </summary>
internal sealed class StartupReport(IServer server, IConfiguration configuration, HostedRoles roles, ApiKeys keys, ILogger<StartupReport> logger) : IHostedLifecycleService
{
    /// <summary>Refuses the configured URLs before anything starts; <see cref="StartedAsync"/> checks what was bound.</summary>
    public Task StartingAsync(CancellationToken cancellationToken)
    {
        RequireLoopbackWhenOpen(ConfiguredUrls(configuration), roles, keys);
        return Task.CompletedTask;
    }

    public Task StartedAsync(CancellationToken cancellationToken)
    {
        var addresses = server.Features.Get<IServerAddressesFeature>()?.Addresses ?? [];
        RequireLoopbackWhenOpen(addresses, roles, keys);
        if (roles.Has(PipelinesRoles.Api) && keys.IsOpen)
        {
            logger.OpenOnLoopback();
        }
        else if (roles.Has(PipelinesRoles.Api))
        {
            logger.KeysConfigured(keys.Count);
        }
        var described = roles.Roles.Describe();
        foreach (var address in addresses)
        {
            logger.Listening(described, address);
            if (roles.Has(PipelinesRoles.Api))
            {
                logger.Reference(address);
            }
        }
        return Task.CompletedTask;
    }

    public static IEnumerable<string> ConfiguredUrls(IConfiguration configuration) =>
        (configuration["urls"] ?? "").Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    /// <exception cref="OptionsValidationException">No key is configured and an address is not loopback.</exception>
    public static void RequireLoopbackWhenOpen(IEnumerable<string> addresses, HostedRoles roles, ApiKeys keys)
    {
        var exposed = addresses.Where(a => !IsLoopback(a)).ToList();
        if (roles.Has(PipelinesRoles.Api) && keys.IsOpen && exposed.Count > 0)
        {
            throw new OptionsValidationException(ApiOptions.Section, typeof(ApiOptions),
            [
                $"No API keys are configured (Pipelines:Api:Keys), so the API may only listen on loopback, but it listens on {string.Join(", ", exposed)}. " +
                "Configure API keys (docs/api.md), or listen on localhost.",
            ]);
        }
    }

    /// <summary><c>http://localhost:5080</c>, <c>http://127.0.0.1:0</c>, <c>http://[::1]:80</c>; not <c>0.0.0.0</c>, <c>*</c> or <c>+</c>.</summary>
    internal static bool IsLoopback(string address)
    {
        if (!Uri.TryCreate(address.Replace("://*", "://wildcard", StringComparison.Ordinal).Replace("://+", "://wildcard", StringComparison.Ordinal), UriKind.Absolute, out var uri))
        {
            return false;
        }
        return uri.IsLoopback;
    }

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
