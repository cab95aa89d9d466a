using System.Globalization;
using System.Text;
using Pipelines.Core.Definitions.Yaml;

namespace Pipelines.Core.Definitions;

/// <summary>Settings of <see cref="PipelineLoader"/>.</summary>
public sealed record PipelineLoaderOptions
{
    /// <summary>
    /// Values for <c>${VAR}</c>. Default: the process environment over the <c>.env</c> file
    /// beside the definition file (the environment wins, as in docker-compose).
    /// </summary>
    public IReadOnlyDictionary<string, string>? Variables { get; init; }

    public DefinitionLimits Limits { get; init; } = DefinitionLimits.Default;

    public CopiliOptions Copili { get; init; } = new();
}

/// <summary>The outcome of loading a file: the pipelines, or every error — never half of a file.</summary>
public sealed record LoadResult(PipelineFileDefinition? Definitions, IReadOnlyList<DefinitionError> Diagnostics)
{
    public bool Succeeded => Definitions is not null;

    public IEnumerable<DefinitionError> Errors => Diagnostics.Where(d => !d.IsWarning);

    public IEnumerable<DefinitionError> Warnings => Diagnostics.Where(d => d.IsWarning);
}

/// <summary>
/// Loads pipeline definitions from YAML, JSON (read by the same parser, so errors have lines and
/// columns too) or copili's format. All problems of a file are reported in one pass, sorted by position.
/// </summary>
public sealed class PipelineLoader(PipelineLoaderOptions? options = null)
{
    private readonly PipelineLoaderOptions _options = options ?? new PipelineLoaderOptions();

    public LoadResult LoadFile(string path)
    {
        var info = new FileInfo(path);
        if (!info.Exists)
        {
            return Failed(path, SourcePosition.Start, "file not found");
        }
        if (info.Length > _options.Limits.MaxFileBytes)
        {
            return TooLarge(path, info.Length);
        }
        return Load(File.ReadAllBytes(path), path, info.DirectoryName ?? ".");
    }

    /// <summary>Loads definition text given as bytes; <paramref name="file"/> names it in errors.</summary>
    public LoadResult Load(ReadOnlySpan<byte> content, string file, string baseDirectory)
    {
        if (content.Length > _options.Limits.MaxFileBytes)
        {
            return TooLarge(file, content.Length);
        }
        if (!TryDecode(content, out var text, out var badByte))
        {
            return Failed(file, badByte.Position, $"the file is not valid UTF-8 (byte 0x{badByte.Value:X2}); save it as UTF-8");
        }
        var (root, syntaxError) = YamlTreeReader.Read(text, file, _options.Limits);
        if (syntaxError is not null)
        {
            return new LoadResult(null, [syntaxError]);
        }
        if (root is null or YamlTreeScalar { IsNull: true })
        {
            return Failed(file, SourcePosition.Start, "the file is empty; expected a 'pipelines:' mapping");
        }
        if (root is not YamlTreeMapping mapping)
        {
            return Failed(file, root.Start, $"expected a mapping with a 'pipelines' key at the top, got {root.KindName}");
        }

        var diagnostics = new List<DefinitionError>();
        var copili = CopiliReader.Recognizes(mapping);
        if (copili)
        {
            mapping = CopiliReader.ToNative(mapping, file, _options.Copili, diagnostics);
        }
        var variables = new VariableResolver(_options.Variables ?? DefaultVariables(baseDirectory), bareDollarNames: copili, _options.Limits.MaxDefaultNesting);
        var dialect = copili ? CopiliReader.Dialect : Dialect.Native;
        var binder = new ModelBinder(file, text, variables, diagnostics, baseDirectory, dialect);
        var definitions = binder.BindRoot<PipelineFileDefinition>(mapping);
        if (definitions is not null)
        {
            foreach (var pipeline in definitions.Pipelines.Values)
            {
                pipeline.BaseDirectory = baseDirectory;
            }
            PipelineValidator.Validate(definitions, diagnostics, dialect);
        }
        var sorted = diagnostics.Distinct().OrderBy(d => d.Position).ThenBy(d => d.Message, StringComparer.Ordinal).ToList();
        return new LoadResult(sorted.Any(d => !d.IsWarning) ? null : definitions, sorted);
    }

    public static IReadOnlyDictionary<string, string> DefaultVariables(string baseDirectory)
    {
        var values = DotEnvFile.Read(Path.Combine(baseDirectory, ".env"));
        foreach (System.Collections.DictionaryEntry entry in Environment.GetEnvironmentVariables())
        {
            values[(string)entry.Key] = (string?)entry.Value ?? "";
        }
        return values;
    }

    private LoadResult TooLarge(string file, long length) =>
        Failed(file, SourcePosition.Start, string.Create(CultureInfo.InvariantCulture,
            $"the file is {length:N0} bytes; definition files are limited to {_options.Limits.MaxFileBytes:N0} bytes"));

    private static LoadResult Failed(string file, SourcePosition at, string message) =>
        new(null, [new DefinitionError(file, at, message)]);

    private static bool TryDecode(ReadOnlySpan<byte> bytes, out string text, out (SourcePosition Position, byte Value) badByte)
    {
        badByte = default;
        if (bytes.StartsWith((ReadOnlySpan<byte>)[0xEF, 0xBB, 0xBF]))
        {
            bytes = bytes[3..];
        }
        try
        {
            text = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true).GetString(bytes);
            return true;
        }
        catch (DecoderFallbackException)
        {
            text = "";
            var line = 1;
            var column = 1;
            var index = 0;
            while (index < bytes.Length)
            {
                if (System.Buffers.OperationStatus.Done != Rune.DecodeFromUtf8(bytes[index..], out var rune, out var consumed))
                {
                    badByte = (new SourcePosition(line, column), bytes[index]);
                    return false;
                }
                (line, column) = rune.Value == '\n' ? (line + 1, 1) : (line, column + 1);
                index += consumed;
            }
            badByte = (new SourcePosition(line, column), 0);
            return false;
        }
    }
}
