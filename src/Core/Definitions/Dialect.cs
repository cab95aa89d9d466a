namespace Pipelines.Core.Definitions;

/// <summary>
/// The words a file is written in, for its error messages: a native file's keys are the model's, a
/// copili file's are copili's (<c>image_repo</c>, not <c>image</c>), so an error names what the user wrote.
/// </summary>
internal sealed class Dialect
{
    private readonly IReadOnlyDictionary<string, string> _keys;
    private readonly IReadOnlyDictionary<string, string> _kinds;
    private readonly string _labelPrefix;

    /// <param name="keys">Native key paths (<c>registry.password</c>) to the file's own; others are the same.</param>
    /// <param name="kinds">Native kinds of object (<c>step</c>) to the file's own nouns.</param>
    /// <param name="labelPrefix">Put before an object's label: <c>copili </c> gives <c>copili container 'load'</c>.</param>
    public Dialect(IReadOnlyDictionary<string, string> keys, IReadOnlyDictionary<string, string> kinds, string labelPrefix)
    {
        _keys = keys;
        _kinds = kinds;
        _labelPrefix = labelPrefix;
    }

    public static Dialect Native { get; } = new(new Dictionary<string, string>(), new Dictionary<string, string>(), "");

    /// <summary>
    /// The file's name for a native key path: the longest renamed prefix ending at a '.' or '[' is
    /// replaced, so <c>env.TOKEN</c> reads <c>env_vars.TOKEN</c> in copili.
    /// </summary>
    public string Key(string path)
    {
        for (var end = path.Length; end > 0; end = path.LastIndexOfAny(['.', '['], end - 1))
        {
            if (_keys.TryGetValue(path[..end], out var renamed))
            {
                return renamed + path[end..];
            }
        }
        return path;
    }

    /// <summary>The file's noun for a kind of object: <c>step</c> is a <c>container</c> in copili.</summary>
    public string Noun(string kind) => _kinds.GetValueOrDefault(kind, kind);

    /// <summary>How an error names an object: <c>step 'load'</c>, or <c>copili container 'load'</c>.</summary>
    public string Label(string kind, string name) => $"{_labelPrefix}{Noun(kind)} '{name}'";
}
