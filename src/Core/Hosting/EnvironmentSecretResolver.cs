using Microsoft.Extensions.Configuration;
using Pipelines.Core.Execution;

namespace Pipelines.Core.Hosting;

/// <summary>
/// Resolves <c>${secret:NAME}</c> from the worker's configuration (<c>Pipelines:Secrets:NAME</c>,
/// e.g. a mounted Kubernetes secret or <c>Pipelines__Secrets__NAME</c>), else from the
/// environment variable <c>NAME</c>.
/// </summary>
public sealed class ConfigurationSecretResolver(IConfiguration configuration) : ISecretResolver
{
    public string? Resolve(string name) =>
        configuration[$"{PipelinesOptions.Section}:Secrets:{name}"] ?? Environment.GetEnvironmentVariable(name);
}
