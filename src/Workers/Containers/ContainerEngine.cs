using Docker.DotNet;
using Microsoft.Extensions.Options;

namespace Pipelines.Workers.Containers;

/// <summary>This worker's connection to its Docker engine, shared by the executor and the orphan reaper.</summary>
public sealed class ContainerEngine : IDisposable
{
    private readonly DockerClientConfiguration _configuration;
    private readonly DockerClient _client;

    public ContainerEngine(IOptions<ContainerOptions> options)
    {
        ArgumentNullException.ThrowIfNull(options);
        Options = options.Value;
        Endpoint = Options.ResolvedEndpoint;
        _configuration = new DockerClientConfiguration(new Uri(Endpoint));
        _client = _configuration.CreateClient();
    }

    public ContainerOptions Options { get; }

    /// <summary>The engine's address (no credentials are ever part of it).</summary>
    public string Endpoint { get; }

    /// <summary>Distinguishes this worker process from an earlier run of the same worker (see <see cref="ContainerLabels.WorkerInstance"/>).</summary>
    public string InstanceId { get; } = Guid.NewGuid().ToString("N");

    public IDockerClient Client => _client;

    public void Dispose()
    {
        _client.Dispose();
        _configuration.Dispose();
    }
}
