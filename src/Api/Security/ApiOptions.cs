using System.Globalization;
using Microsoft.Extensions.Options;

namespace Pipelines.Api.Security;

/// <summary>Configuration section <c>Pipelines:Api</c>: keys and the limits every request is held to.</summary>
public sealed class ApiOptions
{
    public const string Section = "Pipelines:Api";

    /// <summary>
    /// The API keys, each stored as the SHA-256 of the key (docs/api.md says how to make one). With
    /// none, the API is open — and then answers only on loopback, and says so at start-up.
    /// </summary>
    public List<ApiKeyOptions> Keys { get; set; } = [];

    /// <summary>Requests one key (or, without a key, one client address) may make per minute; a key may set its own. Default 600.</summary>
    public int RequestsPerMinute { get; set; } = 600;

    /// <summary>Largest request body, in bytes. Default 1 MiB.</summary>
    public long MaxRequestBodyBytes { get; set; } = 1024 * 1024;

    /// <summary>Deepest nesting of a JSON body (payloads included). Default 32.</summary>
    public int MaxJsonDepth { get; set; } = 32;

    /// <summary>Runs in a page when <c>limit</c> is not given. Default 50.</summary>
    public int DefaultPageSize { get; set; } = 50;

    /// <summary>Largest <c>limit</c> a listing accepts. Default 200.</summary>
    public int MaxPageSize { get; set; } = 200;

    /// <summary>
    /// Shortest time between two fires of a schedule created or changed through the API (the
    /// definition file is the operator's and is not held to it). Default 1 minute; zero allows any.
    /// </summary>
    public TimeSpan MinimumScheduleInterval { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>How long starting, cancelling or retrying a run waits for the broker before answering 503. Default 5 s.</summary>
    public TimeSpan BrokerTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>How often a followed log looks for new lines. Default 250 ms.</summary>
    public TimeSpan LogPollInterval { get; set; } = TimeSpan.FromMilliseconds(250);
}

/// <summary>One API key: who holds it, the SHA-256 of the key, and what it may do.</summary>
public sealed class ApiKeyOptions
{
    /// <summary>Names the key in logs and rate limits, e.g. <c>ci</c> or <c>billing-service</c>.</summary>
    public string Name { get; set; } = "";

    /// <summary>Lower- or upper-case hex SHA-256 of the key's UTF-8 text, optionally written <c>sha256:HEX</c>.</summary>
    public string Hash { get; set; } = "";

    /// <summary>Any of <c>runs:write</c>, <c>runs:read</c>, <c>schedules:write</c>, <c>admin</c>.</summary>
    public List<string> Scopes { get; set; } = [];

    /// <summary>Overrides <see cref="ApiOptions.RequestsPerMinute"/> for this key.</summary>
    public int? RequestsPerMinute { get; set; }

    /// <summary>The hash as 64 lower-case hex digits.</summary>
    public string NormalizedHash => (Hash.StartsWith("sha256:", StringComparison.OrdinalIgnoreCase) ? Hash[7..] : Hash).Trim().ToLowerInvariant();
}

/// <summary>Reports every bad setting at once, each with its name and value (never a key's hash).</summary>
internal sealed class ApiOptionsValidator : IValidateOptions<ApiOptions>
{
    public ValidateOptionsResult Validate(string? name, ApiOptions options)
    {
        var failures = new List<string>();
        void Require(bool ok, string setting, object value, string rule)
        {
            if (!ok)
            {
                failures.Add(string.Create(CultureInfo.InvariantCulture, $"{ApiOptions.Section}:{setting} is {value}; {rule}"));
            }
        }

        Require(options.RequestsPerMinute >= 1, nameof(options.RequestsPerMinute), options.RequestsPerMinute, "it must be at least 1");
        Require(options.MaxRequestBodyBytes >= 1024, nameof(options.MaxRequestBodyBytes), options.MaxRequestBodyBytes, "it must be at least 1024");
        Require(options.MaxJsonDepth is >= 4 and <= 256, nameof(options.MaxJsonDepth), options.MaxJsonDepth, "it must be between 4 and 256");
        Require(options.MaxPageSize >= 1, nameof(options.MaxPageSize), options.MaxPageSize, "it must be at least 1");
        Require(options.DefaultPageSize >= 1 && options.DefaultPageSize <= options.MaxPageSize, nameof(options.DefaultPageSize), options.DefaultPageSize,
            $"it must be between 1 and MaxPageSize ({options.MaxPageSize})");
        Require(options.MinimumScheduleInterval >= TimeSpan.Zero, nameof(options.MinimumScheduleInterval), options.MinimumScheduleInterval, "it must not be negative");
        Require(options.BrokerTimeout > TimeSpan.Zero, nameof(options.BrokerTimeout), options.BrokerTimeout, "it must be positive");
        Require(options.LogPollInterval >= TimeSpan.FromMilliseconds(10), nameof(options.LogPollInterval), options.LogPollInterval, "it must be at least 00:00:00.01");

        var names = new HashSet<string>(StringComparer.Ordinal);
        var hashes = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < options.Keys.Count; i++)
        {
            var key = options.Keys[i];
            var at = $"Keys:{i}";
            Require(!string.IsNullOrWhiteSpace(key.Name), $"{at}:Name", "empty", "every key needs a name");
            Require(string.IsNullOrWhiteSpace(key.Name) || names.Add(key.Name), $"{at}:Name", $"'{key.Name}'", "another key has that name");
            var hash = key.NormalizedHash;
            // The value is not echoed: a hash is not a secret, but it is no one's business either.
            Require(hash.Length == 64 && hash.All(char.IsAsciiHexDigit), $"{at}:Hash", $"{hash.Length} characters long", "it must be the 64 hex digits of the key's SHA-256");
            Require(hash.Length != 64 || hashes.Add(hash), $"{at}:Hash", "the hash of another key", "two keys must not share a hash");
            Require(key.Scopes.Count > 0, $"{at}:Scopes", "empty", $"give at least one of {string.Join(", ", ApiScopes.All)}");
            foreach (var scope in key.Scopes.Where(s => !ApiScopes.All.Contains(s)))
            {
                Require(false, $"{at}:Scopes", $"'{scope}'", $"scopes are {string.Join(", ", ApiScopes.All)}");
            }
            Require(key.RequestsPerMinute is null or >= 1, $"{at}:RequestsPerMinute", key.RequestsPerMinute ?? 0, "it must be at least 1");
        }
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
