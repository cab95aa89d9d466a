using Docker.DotNet;
using Docker.DotNet.Models;

namespace Pipelines.Faults.Services;

/// <summary>The machine's Docker engine (DOCKER_HOST, else the local socket), as the container rows observe it.</summary>
internal sealed class DockerHost : IDisposable
{
    private readonly DockerClientConfiguration _configuration;

    public DockerHost()
    {
        Endpoint = Environment.GetEnvironmentVariable("DOCKER_HOST") is { Length: > 0 } host ? host : "unix:///var/run/docker.sock";
        _configuration = new DockerClientConfiguration(new Uri(Endpoint));
        Client = _configuration.CreateClient();
    }

    public string Endpoint { get; }

    public DockerClient Client { get; }

    /// <summary>The image the container rows run (eng/services.sh imports it).</summary>
    public static string TestImage => Environment.GetEnvironmentVariable("PIPELINES_TEST_IMAGE") is { Length: > 0 } image ? image : "pipelines-test/busybox:latest";

    /// <summary>Why the container rows cannot run here, or null when the engine answers and has the test image.</summary>
    public async Task<string?> MissingAsync()
    {
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            await Client.System.PingAsync(timeout.Token);
            var images = await Client.Images.ListImagesAsync(new ImagesListParameters { All = true }, timeout.Token);
            return images.Any(i => i.RepoTags?.Contains(TestImage) == true) ? null : $"the Docker engine at {Endpoint} lacks the image {TestImage} (bash eng/services.sh up imports it)";
        }
        catch (Exception e) when (e is DockerApiException or HttpRequestException or IOException or TimeoutException or OperationCanceledException)
        {
            return $"no Docker engine answers at {Endpoint} ({e.GetType().Name})";
        }
    }

    /// <summary>Containers (running or not) carrying every one of <paramref name="labels"/>.</summary>
    public async Task<IList<ContainerListResponse>> ListAsync(params (string Key, string Value)[] labels) =>
        await Client.Containers.ListContainersAsync(new ContainersListParameters
        {
            All = true,
            Filters = new Dictionary<string, IDictionary<string, bool>>
            {
                ["label"] = labels.ToDictionary(l => $"{l.Key}={l.Value}", _ => true),
            },
        });

    /// <summary>Starts a <c>sleep</c> container of someone else's, with the given labels (none: an unlabelled one).</summary>
    public async Task<string> StartSleeperAsync(string name, IDictionary<string, string> labels)
    {
        var created = await Client.Containers.CreateContainerAsync(new CreateContainerParameters
        {
            Name = name,
            Image = TestImage,
            Cmd = ["sleep", "900"],
            Labels = labels,
            HostConfig = new HostConfig { NetworkMode = "none" },
        });
        await Client.Containers.StartContainerAsync(created.ID, new ContainerStartParameters());
        return created.ID;
    }

    public async Task<bool> ExistsAsync(string id)
    {
        try
        {
            await Client.Containers.InspectContainerAsync(id);
            return true;
        }
        catch (DockerContainerNotFoundException)
        {
            return false;
        }
    }

    public async Task RemoveAsync(string id)
    {
        try
        {
            await Client.Containers.RemoveContainerAsync(id, new ContainerRemoveParameters { Force = true, RemoveVolumes = true });
        }
        catch (DockerContainerNotFoundException)
        {
        }
    }

    /// <summary>
    /// Starts recording container events of the given kinds that carry <paramref name="label"/>, as they
    /// happen, until the recording is disposed. A query of past events is answered
    /// from the engine's last 256 events only, which a busy engine shared with other suites overwrites.
    /// </summary>
    public EventRecording Record(string label, params string[] kinds) => new(Client, label, kinds);

    /// <summary>Container events recorded as they happen; see <see cref="Record"/>.</summary>
    internal sealed class EventRecording : IAsyncDisposable
    {
        private readonly Collected _messages = new();
        private readonly CancellationTokenSource _stop = new();
        private readonly Task _watching;

        public EventRecording(DockerClient client, string label, string[] kinds) =>
            _watching = client.System.MonitorEventsAsync(new ContainerEventsParameters
            {
                // From the current second on, so that nothing is missed while the stream connects.
                Since = DateTimeOffset.UtcNow.ToUnixTimeSeconds().ToString(System.Globalization.CultureInfo.InvariantCulture),
                Filters = new Dictionary<string, IDictionary<string, bool>>
                {
                    ["type"] = new Dictionary<string, bool> { ["container"] = true },
                    ["event"] = kinds.ToDictionary(k => k, _ => true),
                    ["label"] = new Dictionary<string, bool> { [label] = true },
                },
            }, _messages, _stop.Token);

        public IReadOnlyList<Message> Items => _messages.Items;

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync();
            try
            {
                await _watching;
            }
            catch (Exception e) when (e is OperationCanceledException or IOException or HttpRequestException)
            {
            }
            _stop.Dispose();
        }
    }

    /// <summary>
    /// Runs <paramref name="command"/> in a container of the test image outside any sandbox, on
    /// <paramref name="networkMode"/>, until it exits; returns its exit code and output, and removes it.
    /// </summary>
    public async Task<(long ExitCode, string Output)> RunToEndAsync(string name, IList<string> command, string networkMode, CancellationToken cancellationToken)
    {
        var created = await Client.Containers.CreateContainerAsync(new CreateContainerParameters
        {
            Name = name,
            Image = TestImage,
            Cmd = command,
            HostConfig = new HostConfig { NetworkMode = networkMode },
        }, cancellationToken);
        try
        {
            await Client.Containers.StartContainerAsync(created.ID, new ContainerStartParameters(), cancellationToken);
            var exit = await Client.Containers.WaitContainerAsync(created.ID, cancellationToken);
            using var log = await Client.Containers.GetContainerLogsAsync(created.ID, tty: false, new ContainerLogsParameters { ShowStdout = true, ShowStderr = true }, cancellationToken);
            var (stdout, stderr) = await log.ReadOutputToEndAsync(cancellationToken);
            return (exit.StatusCode, stdout + stderr);
        }
        finally
        {
            await RemoveAsync(created.ID);
        }
    }

    /// <summary>Keeps every event as it arrives (<see cref="Progress{T}"/> would hand them to the thread pool, after the call returned).</summary>
    private sealed class Collected : IProgress<Message>
    {
        private readonly Lock _gate = new();
        private readonly List<Message> _items = [];

        public IReadOnlyList<Message> Items
        {
            get
            {
                lock (_gate)
                {
                    return [.. _items];
                }
            }
        }

        public void Report(Message value)
        {
            lock (_gate)
            {
                _items.Add(value);
            }
        }
    }

    public void Dispose()
    {
        Client.Dispose();
        _configuration.Dispose();
    }
}
