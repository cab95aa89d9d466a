using System.Text;

namespace Pipelines.Core.Tests.Definitions;

/// <summary>
/// Each file in Definitions/Cases sits beside a <c>.errors</c> file holding every diagnostic it must
/// produce, exactly. Hostile inputs that would be unwieldy to commit are generated here instead.
/// </summary>
public sealed class BadDefinitionTests
{
    private const string ExpectedExtension = ".errors";

    private static readonly string[] CaseExtensions = [".yaml", ".json"];

    private static readonly string CasesDirectory = Path.Combine(AppContext.BaseDirectory, "Definitions", "Cases");

    public static TheoryData<string> Cases() => new(CaseFiles.Order(StringComparer.Ordinal));

    private static IEnumerable<string> CaseFiles =>
        Directory.EnumerateFiles(CasesDirectory).Where(path => CaseExtensions.Contains(Path.GetExtension(path))).Select(Path.GetFileName)!;

    [Theory]
    [MemberData(nameof(Cases))]
    public void bad_definition_reports_exactly_the_expected_errors(string caseFile)
    {
        var path = Path.Combine(CasesDirectory, caseFile);
        var expected = File.ReadAllText(Path.ChangeExtension(path, ExpectedExtension)).ReplaceLineEndings("\n").TrimEnd('\n');

        var result = CaseLoader.Load(File.ReadAllBytes(path), caseFile);

        Assert.Equal(expected, CaseLoader.Lines(result));
        Assert.NotEmpty(result.Errors);
        Assert.Null(result.Definitions);
    }

    [Fact]
    public void every_case_has_its_expected_errors_and_every_expectation_its_case()
    {
        var cases = CaseFiles.Select(Path.GetFileNameWithoutExtension).ToList();
        var expectations = Directory.EnumerateFiles(CasesDirectory, "*" + ExpectedExtension).Select(Path.GetFileNameWithoutExtension);

        Assert.Equal(cases.Order(StringComparer.Ordinal), expectations.Order(StringComparer.Ordinal));
        Assert.True(cases.Count >= 40, $"only {cases.Count} cases");
    }

    [Fact]
    public void nesting_ten_thousand_levels_deep_in_flow_style_is_refused_at_the_depth_limit()
    {
        var text = "x-deep: " + new string('[', 10_000) + new string(']', 10_000) + "\npipelines: {}\n";

        var result = CaseLoader.Load(text, "deep.yaml");

        Assert.Equal("deep.yaml:1:72: error: nesting deeper than 64 levels is not allowed", CaseLoader.Lines(result));
    }

    [Fact]
    public void nesting_a_thousand_levels_deep_in_block_style_is_refused_at_the_depth_limit()
    {
        var text = new StringBuilder();
        for (var level = 0; level < 1_000; level++)
        {
            text.Append(' ', level * 2).Append("nested:\n");
        }

        var result = CaseLoader.Load(text.ToString(), "deep.yaml");

        Assert.Equal("deep.yaml:65:129: error: nesting deeper than 64 levels is not allowed", CaseLoader.Lines(result));
    }

    [Fact]
    public void latin1_bytes_are_refused_at_the_first_byte_that_is_not_utf8()
    {
        byte[] content = [.. "pipelines:\n  etl:\n    description: caf"u8, 0xE9, .. "\n"u8];

        var result = CaseLoader.Load(content, "latin1.yaml");

        Assert.Equal("latin1.yaml:3:21: error: the file is not valid UTF-8 (byte 0xE9); save it as UTF-8", CaseLoader.Lines(result));
    }

    [Fact]
    public void utf16_file_is_refused_as_not_utf8()
    {
        var content = Encoding.Unicode.GetPreamble().Concat(Encoding.Unicode.GetBytes("pipelines: {}\n")).ToArray();

        var result = CaseLoader.Load(content, "utf16.yaml");

        Assert.Equal("utf16.yaml:1:1: error: the file is not valid UTF-8 (byte 0xFF); save it as UTF-8", CaseLoader.Lines(result));
    }

    [Fact]
    public void ten_megabyte_text_is_refused_before_it_is_parsed()
    {
        var result = CaseLoader.Load(TenMegabytes(), "huge.yaml");

        Assert.Equal("huge.yaml:1:1: error: the file is 10,485,760 bytes; definition files are limited to 4,194,304 bytes", CaseLoader.Lines(result));
    }

    [Fact]
    public void ten_megabyte_file_is_refused_before_it_is_read()
    {
        var path = Path.Combine(Path.GetTempPath(), $"pipelines-huge-{Guid.NewGuid():N}.yaml");
        File.WriteAllBytes(path, TenMegabytes());
        try
        {
            var result = CaseLoader.Loader().LoadFile(path);

            Assert.Equal($"{path}:1:1: error: the file is 10,485,760 bytes; definition files are limited to 4,194,304 bytes", CaseLoader.Lines(result));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void missing_file_is_reported_by_its_path()
    {
        var result = CaseLoader.Loader().LoadFile("no/such/pipelines.yaml");

        Assert.Equal("no/such/pipelines.yaml:1:1: error: file not found", CaseLoader.Lines(result));
    }

    private static byte[] TenMegabytes()
    {
        var line = "# padding that a hostile or careless generator might emit, line after line\n"u8.ToArray();
        var content = new byte[10 * 1024 * 1024];
        "pipelines:\n"u8.CopyTo(content);
        for (var offset = 11; offset < content.Length; offset += line.Length)
        {
            line.AsSpan(0, Math.Min(line.Length, content.Length - offset)).CopyTo(content.AsSpan(offset));
        }
        return content;
    }
}
