using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Pipelines.Faults.Services;

namespace Pipelines.Faults.Engine;

/// <summary>The API's answer to a start that did not start a run.</summary>
internal sealed class ApiRefusedException(HttpStatusCode status, string body) : Exception($"HTTP {(int)status}")
{
    public HttpStatusCode Status { get; } = status;

    public string Body { get; } = body;
}

/// <summary>
/// The HTTP API of a row's deployment, as its own process (<c>Pipelines__Roles=api</c>) with keys of
/// every scope, and clients holding them.
/// </summary>
internal sealed class ApiEndpoint : IDisposable
{
    private ApiEndpoint(EngineProcess process, string url, IReadOnlyDictionary<string, string> keys)
    {
        Process = process;
        Url = url;
        Keys = keys;
        Admin = Client("admin");
    }

    public EngineProcess Process { get; }

    public string Url { get; }

    /// <summary>Key by name: <c>admin</c>, <c>reader</c> (runs:read), <c>writer</c> (runs:write), <c>scheduler</c> (schedules:write), <c>limited</c> (admin, 60 a minute).</summary>
    public IReadOnlyDictionary<string, string> Keys { get; }

    public HttpClient Admin { get; }

    public static async Task<ApiEndpoint> StartAsync(Deployment deployment, int requestsPerMinute = 100_000)
    {
        var port = FreePort();
        var url = $"http://127.0.0.1:{port}";
        var keys = new Dictionary<string, string>();
        var environment = new Dictionary<string, string>(deployment.WorkerEnvironment)
        {
            ["Pipelines__Roles"] = "api",
            ["Pipelines__Api__RequestsPerMinute"] = requestsPerMinute.ToString(System.Globalization.CultureInfo.InvariantCulture),
        };
        var index = 0;
        foreach (var (name, scope, limit) in new (string, string, int?)[]
        {
            ("admin", "admin", null), ("reader", "runs:read", null), ("writer", "runs:write", null), ("scheduler", "schedules:write", null), ("limited", "admin", 60),
        })
        {
            var key = $"pk_faults_{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(24))}";
            keys[name] = key;
            environment[$"Pipelines__Api__Keys__{index}__Name"] = name;
            environment[$"Pipelines__Api__Keys__{index}__Hash"] = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(key)));
            environment[$"Pipelines__Api__Keys__{index}__Scopes__0"] = scope;
            if (limit is { } perMinute)
            {
                environment[$"Pipelines__Api__Keys__{index}__RequestsPerMinute"] = perMinute.ToString(System.Globalization.CultureInfo.InvariantCulture);
            }
            index++;
        }
        var process = EngineProcess.StartApi("api", environment, deployment.Folder, url);
        var api = new ApiEndpoint(process, url, keys);
        await Shell.WaitUntilAsync(async () =>
        {
            if (process.HasExited)
            {
                throw new InvalidOperationException($"the API exited while starting:\n{process.Output()}");
            }
            try
            {
                using var response = await api.Admin.GetAsync("/healthz");
                return response.IsSuccessStatusCode;
            }
            catch (HttpRequestException)
            {
                return false;
            }
        }, TimeSpan.FromSeconds(90), "the API answering /healthz");
        return api;
    }

    /// <summary>A client sending <paramref name="keyName"/>'s key (none when null).</summary>
    public HttpClient Client(string? keyName, TimeSpan? timeout = null)
    {
        var client = new HttpClient { BaseAddress = new Uri(Url), Timeout = timeout ?? TimeSpan.FromSeconds(15) };
        if (keyName is not null)
        {
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", Keys[keyName]);
        }
        return client;
    }

    /// <summary>A start through <c>POST /api/v1/runs</c>: the run id on 201/200, <see cref="ApiRefusedException"/> on any other answer.</summary>
    public Func<string, CancellationToken, Task<Guid>> Starter(string pipeline, Func<JsonObject?> payload) =>
        async (key, cancellationToken) =>
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "/api/v1/runs")
            {
                Content = JsonContent.Create(new JsonObject { ["pipeline"] = pipeline, ["payload"] = payload() }),
            };
            request.Headers.Add("Idempotency-Key", key);
            using var response = await Admin.SendAsync(request, cancellationToken);
            var body = await response.Content.ReadAsStringAsync(cancellationToken);
            if (response.StatusCode is HttpStatusCode.Created or HttpStatusCode.OK)
            {
                return JsonNode.Parse(body)!["id"]!.GetValue<Guid>();
            }
            throw new ApiRefusedException(response.StatusCode, body);
        };

    /// <summary>A 4xx answer says the start was refused and nothing stored; a 503 or no answer may follow a stored run.</summary>
    public static bool Refused(Exception exception) => exception is ApiRefusedException { Status: >= HttpStatusCode.BadRequest and < HttpStatusCode.InternalServerError };

    private static int FreePort()
    {
        using var probe = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        return ((IPEndPoint)probe.LocalEndpoint).Port;
    }

    public void Dispose()
    {
        Admin.Dispose();
        Process.Dispose();
    }
}
