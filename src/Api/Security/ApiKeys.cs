using System.Net;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;

namespace Pipelines.Api.Security;

/// <summary>
/// The configured keys, looked up by the SHA-256 of the presented token. Keys are long random
/// strings, so a fast unsalted hash is enough: nothing is gained by guessing against it, and the
/// configuration never holds a usable key.
/// </summary>
public sealed class ApiKeys
{
    private readonly Dictionary<string, ApiKeyOptions> _byHash;

    public ApiKeys(IOptions<ApiOptions> options)
    {
        ArgumentNullException.ThrowIfNull(options);
        _byHash = options.Value.Keys.ToDictionary(k => k.NormalizedHash, StringComparer.Ordinal);
    }

    /// <summary>No key is configured: the API answers loopback clients only, without a key.</summary>
    public bool IsOpen => _byHash.Count == 0;

    public int Count => _byHash.Count;

    public ApiKeyOptions? Find(string token)
    {
        ArgumentNullException.ThrowIfNull(token);
        return _byHash.GetValueOrDefault(HashOf(token));
    }

    public ApiKeyOptions? FindByName(string name) => _byHash.Values.FirstOrDefault(k => k.Name == name);

    /// <summary>What to put in <c>Pipelines:Api:Keys:N:Hash</c> for <paramref name="key"/>.</summary>
    public static string HashOf(string key) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(key)));

    /// <summary>A new key: 32 random bytes, base64url, prefixed <c>pk_</c> so that it is recognisable in a leak scan.</summary>
    public static string NewKey() => "pk_" + System.Buffers.Text.Base64Url.EncodeToString(RandomNumberGenerator.GetBytes(32));

    /// <summary>True for loopback addresses; null is an in-process test server.</summary>
    public static bool IsLoopback(IPAddress? address) => address is null || IPAddress.IsLoopback(address);
}
