using Microsoft.Extensions.Options;

namespace Pipelines.Api.Hosting;

/// <summary>What one process of this binary hosts.</summary>
[Flags]
public enum PipelinesRoles
{
    None = 0,

    /// <summary>The HTTP API, its OpenAPI document and reference page.</summary>
    Api = 1,

    /// <summary>Plans runs, starts chains, joins, fails, cancels; sweeps pending runs.</summary>
    Coordinator = 2,

    /// <summary>Runs handler steps: every handler registered here (the demo handlers).</summary>
    Worker = 4,

    /// <summary>Runs container steps on a Docker engine; implies <see cref="Worker"/>.</summary>
    Containers = 8,

    /// <summary>Fires schedules (Quartz).</summary>
    Scheduler = 16,

    All = Api | Coordinator | Worker | Containers | Scheduler,
}

/// <summary>
/// Reads <c>Pipelines:Roles</c>: role names separated by commas (<c>api,coordinator</c>), or a list
/// (<c>Pipelines:Roles:0=api</c>). Unset, or <c>all</c>, hosts every role: the embedded default.
/// </summary>
public static class PipelinesRolesConfiguration
{
    public const string Key = "Pipelines:Roles";

    public static PipelinesRoles Read(Microsoft.Extensions.Configuration.IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        var section = configuration.GetSection(Key);
        var names = section.Value is { } text
            ? text.Split([',', ';', ' '], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            : section.GetChildren().Select(c => c.Value ?? "").Where(v => v.Length > 0).ToArray();
        if (names.Length == 0)
        {
            return PipelinesRoles.All;
        }
        var roles = PipelinesRoles.None;
        var unknown = new List<string>();
        foreach (var name in names)
        {
            if (string.Equals(name, "all", StringComparison.OrdinalIgnoreCase))
            {
                roles |= PipelinesRoles.All;
            }
            else if (Enum.TryParse<PipelinesRoles>(name, ignoreCase: true, out var role) && role is not (PipelinesRoles.None or PipelinesRoles.All) && !int.TryParse(name, out _))
            {
                roles |= role;
            }
            else
            {
                unknown.Add(name);
            }
        }
        if (unknown.Count > 0)
        {
            throw new OptionsValidationException(Key, typeof(PipelinesRoles),
                [$"{Key} is '{string.Join(',', names)}'; unknown role(s) {string.Join(", ", unknown.Select(u => $"'{u}'"))}: use all, or any of api, coordinator, worker, containers, scheduler"]);
        }
        return roles.HasFlag(PipelinesRoles.Containers) ? roles | PipelinesRoles.Worker : roles;
    }

    public static string Describe(PipelinesRoles roles) =>
        string.Join(", ", Enum.GetValues<PipelinesRoles>()
            .Where(r => r is not (PipelinesRoles.None or PipelinesRoles.All) && roles.HasFlag(r))
            .Select(r => r.ToString().ToLowerInvariant()));
}
