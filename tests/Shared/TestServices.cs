using System.Net.Sockets;

namespace Pipelines.Tests;

/// <summary>
/// The backing services started by <c>eng/services.sh up</c>, read from the variables it exports.
/// Locally a test whose service is missing is skipped with the command that starts it; with
/// CI=true it runs and fails, because a silent skip would hide a broken CI machine.
/// </summary>
internal static class TestServices
{
    public static bool IsCi => string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);

    public static string Postgres => Environment.GetEnvironmentVariable("PIPELINES_POSTGRES") ?? "Host=127.0.0.1;Port=5432;Username=pipelines;Database=pipelines";

    public static string RabbitMq => Environment.GetEnvironmentVariable("PIPELINES_RABBITMQ") ?? "amqp://guest:guest@127.0.0.1:5672/";

    public static bool PostgresUp => Answers("127.0.0.1", 5432);

    public static bool RabbitMqUp => Answers("127.0.0.1", 5672);

    public static string? MissingOf(bool postgres, bool rabbitMq)
    {
        var missing = new List<string>();
        if (postgres && !PostgresUp)
        {
            missing.Add("PostgreSQL");
        }
        if (rabbitMq && !RabbitMqUp)
        {
            missing.Add("RabbitMQ");
        }
        return missing.Count == 0 ? null : $"{string.Join(" and ", missing)} not reachable; start them with: eval \"$(bash eng/services.sh up)\"";
    }

    private static bool Answers(string host, int port)
    {
        try
        {
            using var client = new TcpClient();
            return client.ConnectAsync(host, port).Wait(TimeSpan.FromSeconds(5)) && client.Connected;
        }
        catch (AggregateException)
        {
            return false;
        }
        catch (SocketException)
        {
            return false;
        }
    }
}

/// <summary>A fact that needs PostgreSQL and/or RabbitMQ (see <see cref="TestServices"/>).</summary>
internal sealed class ServiceFactAttribute : FactAttribute
{
    public ServiceFactAttribute(bool postgres = true, bool rabbitMq = false)
    {
        if (!TestServices.IsCi && TestServices.MissingOf(postgres, rabbitMq) is { } missing)
        {
            Skip = missing;
        }
    }
}
