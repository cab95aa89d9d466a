using Pipelines.Api.Security;

namespace Pipelines.Api.Tests.Infrastructure;

/// <summary>The API keys every test host is configured with: only their SHA-256 goes into the settings.</summary>
public static class TestKeys
{
    public const string Admin = "pk_test-admin-0123456789abcdefghijklmnopqrstuv";
    public const string Reader = "pk_test-reader-0123456789abcdefghijklmnopqrstu";
    public const string Writer = "pk_test-writer-0123456789abcdefghijklmnopqrstu";
    public const string Scheduler = "pk_test-scheduler-0123456789abcdefghijklmnopq";

    /// <summary>Holds <see cref="LimitedPerMinute"/> requests a minute.</summary>
    public const string Limited = "pk_test-limited-0123456789abcdefghijklmnopqrs";

    public const int LimitedPerMinute = 3;

    public static void AddTo(IDictionary<string, string?> settings)
    {
        Add(settings, 0, "admin", Admin, ApiScopes.Admin);
        Add(settings, 1, "reader", Reader, ApiScopes.RunsRead);
        Add(settings, 2, "writer", Writer, ApiScopes.RunsWrite);
        Add(settings, 3, "scheduler", Scheduler, ApiScopes.SchedulesWrite, ApiScopes.RunsRead);
        Add(settings, 4, "limited", Limited, ApiScopes.RunsRead);
        settings[$"{ApiOptions.Section}:Keys:4:RequestsPerMinute"] = LimitedPerMinute.ToString(System.Globalization.CultureInfo.InvariantCulture);
    }

    private static void Add(IDictionary<string, string?> settings, int index, string name, string key, params string[] scopes)
    {
        var prefix = $"{ApiOptions.Section}:Keys:{index}";
        settings[$"{prefix}:Name"] = name;
        settings[$"{prefix}:Hash"] = ApiKeys.HashOf(key);
        for (var i = 0; i < scopes.Length; i++)
        {
            settings[$"{prefix}:Scopes:{i}"] = scopes[i];
        }
    }
}
