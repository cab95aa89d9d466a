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

    /// <summary>The RabbitMQ management API (vhosts for test isolation), user guest.</summary>
    public static Uri RabbitMqManagement => new(Environment.GetEnvironmentVariable("PIPELINES_RABBITMQ_MANAGEMENT") ?? "http://127.0.0.1:15672");

    /// <summary>The Docker engine of DOCKER_HOST (unix socket or tcp), else the local socket, accepts a connection.</summary>
    public static bool DockerUp
    {
        get
        {
            var endpoint = Environment.GetEnvironmentVariable("DOCKER_HOST") is { Length: > 0 } host ? new Uri(host) : new Uri("unix:///var/run/docker.sock");
            if (endpoint.Scheme != "unix")
            {
                return Answers(endpoint.Host, endpoint.Port);
            }
            try
            {
                using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                socket.Connect(new UnixDomainSocketEndPoint(endpoint.AbsolutePath));
                return true;
            }
            catch (SocketException)
            {
                return false;
            }
        }
    }

    public static string? MissingOf(bool postgres, bool rabbitMq, bool docker = false)
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
        if (docker && !DockerUp)
        {
            missing.Add("Docker");
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

/// <summary>A fact that needs PostgreSQL, RabbitMQ and/or Docker (see <see cref="TestServices"/>).</summary>
internal sealed class ServiceFactAttribute : FactAttribute
{
    public ServiceFactAttribute(bool postgres = true, bool rabbitMq = false, bool docker = false)
    {
        if (!TestServices.IsCi && TestServices.MissingOf(postgres, rabbitMq, docker) is { } missing)
        {
            Skip = missing;
        }
    }
}
