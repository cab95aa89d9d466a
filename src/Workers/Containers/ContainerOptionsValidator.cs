using System.Globalization;
using Microsoft.Extensions.Options;
using Pipelines.Core.Definitions;

namespace Pipelines.Workers.Containers;

/// <summary>Reports every bad container setting, each with its name and value, in one message.</summary>
public sealed class ContainerOptionsValidator : IValidateOptions<ContainerOptions>
{
    public ValidateOptionsResult Validate(string? name, ContainerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var failures = new List<string>();
        void Fail(string setting, object? value, string rule) =>
            failures.Add($"{ContainerOptions.Section}:{setting} = '{Convert.ToString(value, CultureInfo.InvariantCulture)}': {rule}");

        if (!Uri.TryCreate(options.ResolvedEndpoint, UriKind.Absolute, out var endpoint) || endpoint.Scheme is not ("unix" or "tcp" or "http" or "https" or "npipe"))
        {
            Fail(nameof(options.DockerEndpoint), options.ResolvedEndpoint, "must be a unix://, tcp://, http(s):// or npipe:// address");
        }
        if (string.IsNullOrWhiteSpace(options.WorkerId) || options.WorkerId.Any(char.IsWhiteSpace))
        {
            Fail(nameof(options.WorkerId), options.WorkerId, "must be a non-empty name without spaces");
        }
        if (options.MaxConcurrentContainers < 1)
        {
            Fail(nameof(options.MaxConcurrentContainers), options.MaxConcurrentContainers, "must be at least 1");
        }
        CheckSize(nameof(options.DefaultMemory), options.DefaultMemory, 6L << 20, "at least 6m (Docker's minimum)");
        if (options.MaxMemory is not null)
        {
            CheckSize(nameof(options.MaxMemory), options.MaxMemory, 6L << 20, "at least 6m (Docker's minimum)");
        }
        CheckSize(nameof(options.TmpfsSize), options.TmpfsSize, 1L << 20, "at least 1m");
        if (options.DefaultCpus is <= 0 or > 1024)
        {
            Fail(nameof(options.DefaultCpus), options.DefaultCpus, "must be more than 0, e.g. 0.5 or 2");
        }
        if (options.MaxCpus is <= 0 or > 1024)
        {
            Fail(nameof(options.MaxCpus), options.MaxCpus, "must be more than 0, e.g. 0.5 or 2");
        }
        if (options.DefaultPids < 1)
        {
            Fail(nameof(options.DefaultPids), options.DefaultPids, "must be at least 1");
        }
        if (options.MaxPids is < 1)
        {
            Fail(nameof(options.MaxPids), options.MaxPids, "must be at least 1");
        }
        if (string.IsNullOrWhiteSpace(options.Runtime))
        {
            Fail(nameof(options.Runtime), options.Runtime, "must name an OCI runtime the engine has, e.g. runc");
        }
        var user = options.User.Split(':');
        if (user.Length > 2 || !user.All(id => uint.TryParse(id, NumberStyles.None, CultureInfo.InvariantCulture, out _)))
        {
            Fail(nameof(options.User), options.User, "must be numeric UID:GID, e.g. 65534:65534");
        }
        else if (user[0] == "0")
        {
            Fail(nameof(options.User), options.User, "must not be root: steps run untrusted code");
        }
        for (var i = 0; i < options.AllowedHostPaths.Count; i++)
        {
            if (!HostPathRule.TryParse(options.AllowedHostPaths[i], out _))
            {
                Fail($"{nameof(options.AllowedHostPaths)}:{i}", options.AllowedHostPaths[i], "must be an absolute path, optionally followed by :ro");
            }
        }
        if (options.LogCapBytes < 1024)
        {
            Fail(nameof(options.LogCapBytes), options.LogCapBytes, "must be at least 1024");
        }
        if (options.ErrorLogLines is < 0 or > 1000)
        {
            Fail(nameof(options.ErrorLogLines), options.ErrorLogLines, "must be between 0 and 1000");
        }
        if (options.MaxOutputBytes < 1024)
        {
            Fail(nameof(options.MaxOutputBytes), options.MaxOutputBytes, "must be at least 1024");
        }
        if (options.MaxBuildContextBytes < 1024)
        {
            Fail(nameof(options.MaxBuildContextBytes), options.MaxBuildContextBytes, "must be at least 1024");
        }
        if (options.NetworkPool.Size is < 0 or > 64)
        {
            Fail($"{nameof(options.NetworkPool)}:{nameof(options.NetworkPool.Size)}", options.NetworkPool.Size, "must be between 0 (off) and 64");
        }
        if (options.NetworkPool.Size > 0 && string.IsNullOrWhiteSpace(options.NetworkPool.Image))
        {
            Fail($"{nameof(options.NetworkPool)}:{nameof(options.NetworkPool.Image)}", options.NetworkPool.Image, "must name an image when the pool is on");
        }
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);

        void CheckSize(string setting, string value, long minimum, string rule)
        {
            if (!ByteSize.TryParse(value, out var size) || size.Bytes < minimum)
            {
                Fail(setting, value, $"must be an amount of memory such as 512m, {rule}");
            }
        }
    }
}
