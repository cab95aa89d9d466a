using System.Globalization;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Npgsql;
using Pipelines.Core.Planning;
using Pipelines.Faults.Engine;
using Pipelines.Faults.Recording;
using Pipelines.Faults.Report;
using Pipelines.Faults.Services;

namespace Pipelines.Faults.Rows;

/// <summary>
/// Hostile input: a canary secret (a random value no one else has) given to the workers as a
/// <c>${secret:...}</c> for container env and commands and as a registry password, through steps that
/// print it, fail quoting it, and pull with it. Afterwards every place a secret could leak to is
/// searched for it: every process's log at Debug, every message the broker routed (its firehose) and
/// every queue (<c>_error</c> included), every row of every table, the broker's own log and the
/// exported traces and metrics. The value itself is never printed.
/// </summary>
internal sealed class SecretCanary : IRow
{
    private const string Definitions = """
        pipelines:
          canary-env:
            steps:
              - name: leak
                image: ${IMAGE}
                env: { TOKEN: "${secret:CANARY_TOKEN}" }
                retry: { attempts: 2, backoff: fixed, initial: 100ms }
                # Proves the value arrived (its hash), prints it to both streams, then fails quoting its last lines.
                command: ["sh", "-c", "echo \"$$TOKEN\" | sha256sum; echo token=$$TOKEN; echo \"$$TOKEN\" >&2; exit 3"]
          canary-command:
            steps:
              - name: echo
                image: ${IMAGE}
                command: ["sh", "-c", "echo the token is ${secret:CANARY_TOKEN}"]
          canary-registry:
            steps:
              - name: pull
                image: 127.0.0.1:1/faults/private
                tag: "1"
                registry: { username: ci, password: "${secret:CANARY_REGISTRY}" }
          canary-output:
            steps:
              - name: out
                image: ${IMAGE}
                env: { TOKEN: "${secret:CANARY_OUTPUT}" }
                command: ["sh", "-c", "printf '{\"token\":\"%s\"}' \"$$TOKEN\" > /pipelines/output/output.json"]
        """;

    public string Id => "canary";

    public string Title => "secret canary";

    public bool NeedsDocker => true;

    public RowKind Kind => RowKind.HostileInput;

    public string Bar => "0 occurrences in logs, messages (`_error` queues too), the database, traces and API responses";

    public async Task<RowResult> RunAsync(Cluster cluster, FaultOptions options, CancellationToken cancellationToken)
    {
        using var docker = new DockerHost();
        // Random, so that finding it anywhere can only mean it leaked there. Never printed.
        var token = $"canary-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16))}";
        var registryPassword = $"canary-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16))}";
        var outputSecret = $"canary-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16))}";
        string[] canaries = [token, registryPassword];
        using var collector = new CaptureEndpoint();
        var rabbit = cluster.Rabbit;

        var deployment = await Deployment.CreateAsync(cluster, "canary", Definitions.Replace("${IMAGE}", DockerHost.TestImage, StringComparison.Ordinal));
        var vhost = Uri.EscapeDataString(deployment.Vhost);
        // The broker's firehose copies every message published in the vhost to amq.rabbitmq.trace.
        await rabbit.CtlAsync("trace_on", "-p", deployment.Vhost);
        (await rabbit.Management.PutAsJsonAsync($"queues/{vhost}/faults-tap", new { durable = false, auto_delete = false }, cancellationToken)).EnsureSuccessStatusCode();
        (await rabbit.Management.PostAsJsonAsync($"bindings/{vhost}/e/amq.rabbitmq.trace/q/faults-tap", new { routing_key = "#" }, cancellationToken)).EnsureSuccessStatusCode();

        var telemetry = new Dictionary<string, string?>
        {
            ["OTEL_EXPORTER_OTLP_ENDPOINT"] = collector.Url,
            ["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf",
            ["OTEL_BSP_SCHEDULE_DELAY"] = "500",
            ["OTEL_METRIC_EXPORT_INTERVAL"] = "1000",
        };
        var calls = new CallLog();
        string? hashLine;
        Reconciliation runs;
        var answers = new List<(string Request, string Body)>();
        try
        {
            foreach (var (key, value) in new Dictionary<string, string>
            {
                ["Pipelines__Containers__Enabled"] = "true",
                ["Pipelines__Secrets__CANARY_TOKEN"] = token,
                ["Pipelines__Secrets__CANARY_REGISTRY"] = registryPassword,
                ["Pipelines__Secrets__CANARY_OUTPUT"] = outputSecret,
                ["Logging__LogLevel__Default"] = "Debug",
            })
            {
                deployment.WorkerEnvironment[key] = value;
            }
            foreach (var (key, value) in telemetry)
            {
                deployment.WorkerEnvironment[key] = value!;
            }
            await deployment.StartCoordinatorAsync(Microsoft.Extensions.Logging.LogLevel.Debug, telemetry);
            var worker = deployment.StartWorker($"faults-canary-{Guid.NewGuid():N}"[..22]);
            using var api = await ApiEndpoint.StartAsync(deployment);
            await deployment.WaitForConsumersAsync(StepQueues.Containers, 1);
            foreach (var pipeline in new[] { "canary-env", "canary-command", "canary-registry", "canary-output" })
            {
                await calls.RecordAsync(key => api.Starter(pipeline, () => null)(key, cancellationToken), ApiEndpoint.Refused);
            }
            await Reconciliation.DrainAsync(deployment.Store, () => Reconciliation.AcceptedAsync(deployment.Store, calls), TimeSpan.FromMinutes(2));
            answers = await ReadApiAsync(api, calls, cancellationToken);
            // Batches of spans and metrics go out every second; then a clean stop flushes the rest.
            await Task.Delay(TimeSpan.FromSeconds(3), cancellationToken);
            await worker.TerminateAsync(TimeSpan.FromSeconds(60));
            var expectedHash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(token + "\n")));
            hashLine = await CountRowsAsync(deployment.ConnectionString, expectedHash) > 0 ? expectedHash[..12] : null;
            runs = await Reconciliation.ComputeAsync(deployment.Store, calls, deployment.ReadLedger(), ledgered: false);
        }
        finally
        {
            await deployment.DisposeAsync();
        }

        // Every place a secret could end up.
        var sinks = new List<(string Sink, string Scope, int Hits, int OutputHits)>();
        void Text(string sink, string scope, string text) =>
            sinks.Add((sink, scope, canaries.Sum(c => Occurrences(text, c)), Occurrences(text, outputSecret)));

        foreach (var file in Directory.EnumerateFiles(deployment.Folder, "*.log"))
        {
            Text("logs", Path.GetFileName(file), await File.ReadAllTextAsync(file, cancellationToken));
        }
        foreach (var file in Directory.EnumerateFiles(Path.Combine(rabbit.Folder, "log")))
        {
            Text("broker log", Path.GetFileName(file), await File.ReadAllTextAsync(file, cancellationToken));
        }
        var firehose = await DrainAsync(rabbit, vhost, "faults-tap");
        Text("messages", $"{firehose.Count} routed by the broker (firehose)", string.Join("\n", firehose));
        await rabbit.CtlAsync("trace_off", "-p", deployment.Vhost);
        var queued = 0;
        foreach (var (queue, messages, _) in await rabbit.QueuesAsync(deployment.Vhost))
        {
            if (messages > 0 && queue != "faults-tap")
            {
                var peeked = await rabbit.PeekAsync(deployment.Vhost, queue, (int)Math.Min(messages, 10_000));
                queued += peeked.Count;
                Text("messages", queue, string.Join("\n", peeked.Select(Decode)));
            }
        }
        var errorQueues = (await rabbit.QueuesAsync(deployment.Vhost)).Where(q => q.Name.EndsWith("_error", StringComparison.Ordinal) || q.Name.EndsWith("_skipped", StringComparison.Ordinal)).ToList();
        var database = await DatabaseAsync(deployment.ConnectionString, canaries, outputSecret);
        sinks.AddRange(database.Select(d => ("database", d.Table, d.Hits, d.OutputHits)));
        foreach (var group in answers.GroupBy(a => a.Request.Split(' ')[0]))
        {
            Text("API responses", $"{group.Count()} × {group.Key}", string.Join("\n", group.Select(a => a.Body)));
        }
        var bodies = collector.Bodies;
        var exported = bodies.Sum(b => b.Length);
        sinks.Add(("traces and metrics", $"{bodies.Count} OTLP requests, {exported:N0} bytes", canaries.Sum(c => Occurrences(bodies, c)), Occurrences(bodies, outputSecret)));

        var leaks = sinks.Where(s => s.Hits > 0).ToList();
        var outputLeaks = sinks.Where(s => s.OutputHits > 0).Select(s => $"{s.Sink}: {s.Scope} ×{s.OutputHits}").ToList();
        return RowResult.Of(this) with
        {
            Passed = leaks.Count == 0 && hashLine is not null && bodies.Count > 0 && firehose.Count > 0 && answers.Count > 0,
            Cases = "3 steps handed the canary (env + failing exit quoting its output, command argument, registry password of a failing pull)",
            Outcome = string.Create(CultureInfo.InvariantCulture,
                $"{leaks.Sum(l => l.Hits)} occurrences in {sinks.Count} places searched: {sinks.Count(s => s.Sink == "logs")} process logs at Debug, the broker's log, {firehose.Count + queued} messages ({errorQueues.Count} `_error`/`_skipped` queues), {database.Count} tables, {bodies.Count} OTLP exports, {answers.Count} API responses"),
            Schedule = "Runs started through an API process; a worker with containers, `Logging:LogLevel:Default` Debug, the secrets as `Pipelines:Secrets:*`, exporting OTLP/HTTP to a collector in the harness; the coordinator in the harness at Debug, exporting too; RabbitMQ's firehose on for the row's vhost. Afterwards the API is asked for every run, every attempt's log, each pipeline and the run list. Steps: `canary-env` (prints the secret's SHA-256, then the secret to stdout and stderr, exits 3, retried once), `canary-command` (`echo` with the secret in its argument), `canary-registry` (a pull from a registry that is not there, with the secret as password). Each canary is a fresh random value, counted but never printed.",
            Notes =
            [
                hashLine is null
                    ? "**the step's log does not show the secret's SHA-256: the canary may not have reached the container, and 0 occurrences would prove nothing**"
                    : $"the secret reached the container: its SHA-256 (starting {hashLine}) is in the step's stored log.",
                $"runs: {runs.Succeeded} succeeded, {runs.FailedRuns} failed, as intended (the failing exit and the failing pull).",
                .. leaks.Select(l => $"**leak**: {l.Sink}: {l.Scope} ×{l.Hits}"),
                outputLeaks.Count == 0
                    ? "a step that writes its secret into its output (`canary-output`): the value is not found anywhere."
                    : $"a step that writes its own secret into its output (`canary-output`, a separate canary): the output is stored and sent as written, so the value is in {string.Join("; ", outputLeaks)}. Outputs are not masked (docs/containers.md promises masking for log lines and errors only).",
            ],
        };
    }

    /// <summary>What a client can read back: each run, each attempt's log, each pipeline's description, the run list.</summary>
    private static async Task<List<(string Request, string Body)>> ReadApiAsync(ApiEndpoint api, CallLog calls, CancellationToken cancellationToken)
    {
        var answers = new List<(string, string)>();
        async Task<string> GetAsync(string kind, string path)
        {
            var body = await api.Admin.GetStringAsync(path, cancellationToken);
            answers.Add(($"{kind} {path}", body));
            return body;
        }
        foreach (var run in calls.Calls.Where(c => c.RunId is not null).Select(c => c.RunId!.Value))
        {
            var json = JsonNode.Parse(await GetAsync("run", $"/api/v1/runs/{run}"))!;
            foreach (var step in json["steps"]!.AsArray())
            {
                foreach (var attempt in step!["attempts"]?.AsArray() ?? [])
                {
                    await GetAsync("log", $"/api/v1/runs/{run}/steps/{step["name"]}/attempts/{attempt!["number"]}/log");
                }
            }
        }
        foreach (var pipeline in new[] { "canary-env", "canary-command", "canary-registry", "canary-output" })
        {
            await GetAsync("pipeline", $"/api/v1/pipelines/{pipeline}");
        }
        await GetAsync("list", "/api/v1/runs?limit=200");
        return answers;
    }

    private static int Occurrences(string text, string value)
    {
        var count = 0;
        for (var at = text.IndexOf(value, StringComparison.Ordinal); at >= 0; at = text.IndexOf(value, at + value.Length, StringComparison.Ordinal))
        {
            count++;
        }
        return count;
    }

    private static int Occurrences(IEnumerable<byte[]> blobs, string value)
    {
        var needle = Encoding.UTF8.GetBytes(value);
        var count = 0;
        foreach (var blob in blobs)
        {
            for (var at = blob.AsSpan().IndexOf(needle); at >= 0;)
            {
                count++;
                var next = blob.AsSpan(at + needle.Length).IndexOf(needle);
                at = next < 0 ? -1 : at + needle.Length + next;
            }
        }
        return count;
    }

    /// <summary>The payload of a message the management API returned, decoded when it came base64-encoded.</summary>
    private static string Decode(string message)
    {
        var json = JsonNode.Parse(message)!;
        var payload = json["payload"]?.GetValue<string>() ?? "";
        var headers = json["properties"]?.ToJsonString() ?? "";
        return json["payload_encoding"]?.GetValue<string>() == "base64"
            ? Encoding.UTF8.GetString(Convert.FromBase64String(payload)) + headers
            : payload + headers;
    }

    private static async Task<List<string>> DrainAsync(RabbitNode rabbit, string vhost, string queue)
    {
        var all = new List<string>();
        while (true)
        {
            using var response = await rabbit.Management.PostAsJsonAsync($"queues/{vhost}/{queue}/get",
                new { count = 500, ackmode = "ack_requeue_false", encoding = "auto", truncate = 50_000_000 });
            response.EnsureSuccessStatusCode();
            var batch = await response.Content.ReadFromJsonAsync<JsonArray>() ?? [];
            all.AddRange(batch.Select(m => Decode(m!.ToJsonString())));
            if (batch.Count < 500)
            {
                return all;
            }
        }
    }

    private static async Task<int> CountRowsAsync(string connectionString, string value)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT count(*) FROM step_logs l WHERE row_to_json(l)::text LIKE '%' || @value || '%'", connection);
        command.Parameters.AddWithValue("value", value);
        return Convert.ToInt32(await command.ExecuteScalarAsync(), CultureInfo.InvariantCulture);
    }

    /// <summary>For every table of the row's database: rows holding a canary, and rows holding the output probe's value.</summary>
    private static async Task<List<(string Table, int Hits, int OutputHits)>> DatabaseAsync(string connectionString, string[] canaries, string output)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        var tables = new List<string>();
        await using (var list = new NpgsqlCommand("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1", connection))
        await using (var reader = await list.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                tables.Add(reader.GetString(0));
            }
        }
        var found = new List<(string, int, int)>();
        foreach (var table in tables)
        {
            async Task<int> CountAsync(string value)
            {
                await using var command = new NpgsqlCommand($"SELECT count(*) FROM \"{table}\" t WHERE row_to_json(t)::text LIKE '%' || @value || '%'", connection);
                command.Parameters.AddWithValue("value", value);
                return Convert.ToInt32(await command.ExecuteScalarAsync(), CultureInfo.InvariantCulture);
            }
            var hits = 0;
            foreach (var canary in canaries)
            {
                hits += await CountAsync(canary);
            }
            found.Add((table, hits, await CountAsync(output)));
        }
        return found;
    }
}
