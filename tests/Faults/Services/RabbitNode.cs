using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;

namespace Pipelines.Faults.Services;

/// <summary>
/// A RabbitMQ node of the harness's own (<c>faults-PORT@localhost</c>, its own AMQP, distribution and
/// management ports, data and logs in a temporary folder), started as a child process, so that
/// killing it never touches the shared broker other suites use. The management API answers on
/// <see cref="ManagementPort"/> for queue and consumer counts.
/// </summary>
internal sealed class RabbitNode : IAsyncDisposable
{
    private readonly string _pidFile;
    private readonly Dictionary<string, string> _environment;
    private static readonly Lock AppendGate = new();
    private Process? _process;

    private RabbitNode(string folder, int port, int managementPort, int distributionPort)
    {
        Folder = folder;
        Port = port;
        // Named after its port so that two harnesses on different ports can run side by side.
        NodeName = $"faults-{port}@localhost";
        ManagementPort = managementPort;
        _pidFile = Path.Combine(folder, "rabbit.pid");
        _environment = new()
        {
            ["HOME"] = folder, // the Erlang cookie the node and rabbitmqctl share
            ["RABBITMQ_NODENAME"] = NodeName,
            ["RABBITMQ_NODE_IP_ADDRESS"] = "127.0.0.1",
            ["RABBITMQ_NODE_PORT"] = port.ToString(CultureInfo.InvariantCulture),
            ["RABBITMQ_DIST_PORT"] = distributionPort.ToString(CultureInfo.InvariantCulture),
            ["RABBITMQ_CONFIG_FILE"] = Path.Combine(folder, "rabbitmq.conf"),
            ["RABBITMQ_ENABLED_PLUGINS_FILE"] = Path.Combine(folder, "enabled_plugins"),
            ["RABBITMQ_MNESIA_BASE"] = Path.Combine(folder, "mnesia"),
            ["RABBITMQ_LOG_BASE"] = Path.Combine(folder, "log"),
            ["RABBITMQ_PID_FILE"] = _pidFile,
            ["RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS"] = "-kernel inet_dist_use_interface {127,0,0,1}",
            ["ERL_EPMD_ADDRESS"] = "127.0.0.1",
        };
        Management = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{managementPort}/api/") };
        Management.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.ASCII.GetBytes("guest:guest")));
    }

    public string NodeName { get; }

    public string Folder { get; }

    public int Port { get; }

    public int ManagementPort { get; }

    public HttpClient Management { get; }

    public string Version { get; private set; } = "";

    public string Uri(string vhost) => $"amqp://guest:guest@127.0.0.1:{Port}/{System.Uri.EscapeDataString(vhost)}";

    public static async Task<RabbitNode> StartAsync(string folder, int port, int managementPort, int distributionPort)
    {
        foreach (var taken in new[] { port, managementPort, distributionPort })
        {
            if (await Shell.PortOpenAsync(taken))
            {
                throw new InvalidOperationException($"port {taken} is taken; the harness's RabbitMQ node needs it (--rabbitmq-port)");
            }
        }
        Directory.CreateDirectory(folder);
        var node = new RabbitNode(folder, port, managementPort, distributionPort);
        await File.WriteAllTextAsync(Path.Combine(folder, "enabled_plugins"), "[rabbitmq_management].\n");
        await File.WriteAllTextAsync(Path.Combine(folder, "rabbitmq.conf"), string.Create(CultureInfo.InvariantCulture, $"""
            # pipelines-faults: a node of its own on loopback.
            management.tcp.ip = 127.0.0.1
            management.tcp.port = {managementPort}
            log.console = false
            log.file.level = info
            loopback_users = none

            """));
        await node.StartAgainAsync();
        node.Version = (await node.CtlAsync("version")).Trim();
        return node;
    }

    /// <summary>When AMQP last started listening: from then on clients can reconnect.</summary>
    public DateTimeOffset ListeningSince { get; private set; }

    /// <summary>Boots the node and waits for AMQP and the management API; returns how long it took AMQP to listen.</summary>
    public async Task<TimeSpan> StartAgainAsync()
    {
        var clock = Stopwatch.StartNew();
        File.Delete(_pidFile);
        var start = new ProcessStartInfo("/usr/lib/rabbitmq/bin/rabbitmq-server")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            WorkingDirectory = Folder,
        };
        foreach (var (key, value) in _environment)
        {
            start.Environment[key] = value;
        }
        _process = Process.Start(start) ?? throw new InvalidOperationException("could not start rabbitmq-server");
        var startupLog = Path.Combine(Folder, "startup.log");
        _process.OutputDataReceived += (_, e) => Append(startupLog, e.Data);
        _process.ErrorDataReceived += (_, e) => Append(startupLog, e.Data);
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        var process = _process;
        async Task<bool> Answers(Func<Task<bool>> check) => process.HasExited
            ? throw new InvalidOperationException($"rabbitmq-server exited with {process.ExitCode} while starting; see {startupLog}")
            : await check();
        // Clients may connect from the moment AMQP listens, before the management API answers.
        await Shell.WaitUntilAsync(() => Answers(() => Shell.PortOpenAsync(Port)), TimeSpan.FromMinutes(2), "the harness's RabbitMQ node listening", TimeSpan.FromMilliseconds(50));
        ListeningSince = DateTimeOffset.UtcNow;
        var boot = clock.Elapsed;
        await Shell.WaitUntilAsync(() => Answers(ManagementAnswersAsync), TimeSpan.FromMinutes(2), "the harness's RabbitMQ management API answering", TimeSpan.FromMilliseconds(100));
        return boot;
    }

    /// <summary>The fault: SIGKILL to the Erlang VM, so nothing is flushed or closed cleanly.</summary>
    public async Task KillAsync()
    {
        var pid = int.Parse((await File.ReadAllTextAsync(_pidFile)).Trim(), CultureInfo.InvariantCulture);
        await Shell.SignalAsync(pid, "KILL");
        if (_process is not null)
        {
            await _process.WaitForExitAsync();
            _process.Dispose();
            _process = null;
        }
        await Shell.WaitUntilAsync(async () => !await Shell.PortOpenAsync(Port), TimeSpan.FromSeconds(30), "the killed broker's port closing");
    }

    public Task<string> CtlAsync(params string[] arguments) =>
        Shell.CheckAsync("/usr/lib/rabbitmq/bin/rabbitmqctl", ["-n", NodeName, .. arguments], _environment, TimeSpan.FromMinutes(1));

    /// <summary>Evaluates an Erlang expression on the node, e.g. to change <c>consumer_timeout</c>.</summary>
    public Task<string> EvalAsync(string expression) => CtlAsync("eval", expression);

    public async Task CreateVhostAsync(string vhost)
    {
        (await Management.PutAsync($"vhosts/{System.Uri.EscapeDataString(vhost)}", null)).EnsureSuccessStatusCode();
        (await Management.PutAsJsonAsync($"permissions/{System.Uri.EscapeDataString(vhost)}/guest", new { configure = ".*", write = ".*", read = ".*" })).EnsureSuccessStatusCode();
    }

    /// <summary>Consumers on <paramref name="queue"/>, 0 when it does not exist or the node does not answer.</summary>
    public async Task<int> ConsumersAsync(string vhost, string queue)
    {
        try
        {
            using var response = await Management.GetAsync($"queues/{System.Uri.EscapeDataString(vhost)}/{System.Uri.EscapeDataString(queue)}");
            if (!response.IsSuccessStatusCode)
            {
                return 0;
            }
            var body = await response.Content.ReadFromJsonAsync<JsonObject>();
            return body?["consumers"]?.GetValue<int>() ?? 0;
        }
        catch (HttpRequestException)
        {
            return 0;
        }
    }

    /// <summary>Every queue of the vhost with its ready and unacknowledged message counts.</summary>
    public async Task<IReadOnlyList<(string Name, long Messages, int Consumers)>> QueuesAsync(string vhost)
    {
        var queues = await Management.GetFromJsonAsync<JsonArray>($"queues/{System.Uri.EscapeDataString(vhost)}") ?? [];
        return [.. queues.Select(q => (q!["name"]!.GetValue<string>(), q["messages"]?.GetValue<long>() ?? 0, q["consumers"]?.GetValue<int>() ?? 0))];
    }

    /// <summary>Reads (and requeues) up to <paramref name="count"/> messages of a queue, payloads as text.</summary>
    public async Task<IReadOnlyList<string>> PeekAsync(string vhost, string queue, int count)
    {
        using var response = await Management.PostAsJsonAsync(
            $"queues/{System.Uri.EscapeDataString(vhost)}/{System.Uri.EscapeDataString(queue)}/get",
            new { count, ackmode = "ack_requeue_true", encoding = "auto", truncate = 10_000_000 });
        response.EnsureSuccessStatusCode();
        var messages = await response.Content.ReadFromJsonAsync<JsonArray>() ?? [];
        return [.. messages.Select(m => m!.ToJsonString())];
    }

    private async Task<bool> ManagementAnswersAsync()
    {
        try
        {
            using var response = await Management.GetAsync("overview");
            return response.IsSuccessStatusCode;
        }
        catch (HttpRequestException)
        {
            return false;
        }
    }

    private static void Append(string file, string? line)
    {
        if (line is not null)
        {
            lock (AppendGate)
            {
                File.AppendAllText(file, line + "\n");
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_process is { HasExited: false })
        {
            try
            {
                await CtlAsync("stop");
            }
            catch (InvalidOperationException)
            {
                _process.Kill(entireProcessTree: true);
            }
            await _process.WaitForExitAsync();
        }
        _process?.Dispose();
        Management.Dispose();
    }
}
