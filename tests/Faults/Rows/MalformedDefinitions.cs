using System.Diagnostics;
using System.Globalization;
using Pipelines.Core.Definitions;
using Pipelines.Faults.Engine;
using Pipelines.Faults.Hostile;
using Pipelines.Faults.Report;
using Pipelines.Tests;

namespace Pipelines.Faults.Rows;

/// <summary>
/// Hostile input: malformed definition files — the hand-written cases of Core.Tests (each beside its
/// exact expected errors) and a generated corpus (each with the position of the mistake it was built
/// with). Every file must be refused, with the exact file:line:column, each within 100 ms. Loading is
/// timed here, in a program, because tests never time anything.
/// </summary>
internal sealed class MalformedDefinitions : IRow
{
    private static readonly TimeSpan Limit = TimeSpan.FromMilliseconds(100);

    public string Id => "definitions";

    public string Title => "malformed definition files";

    public RowKind Kind => RowKind.HostileInput;

    public string Bar => "100% rejected with the exact file:line:column; each < 100 ms";

    public bool NeedsCluster => false;

    public Task<RowResult> RunAsync(Cluster cluster, FaultOptions options, CancellationToken cancellationToken)
    {
        var folder = Directory.CreateTempSubdirectory("pipelines-faults-definitions-").FullName;
        try
        {
            return Task.FromResult(Run(options, folder));
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    private RowResult Run(FaultOptions options, string folder)
    {
        // The environment must not leak into the expectations: variables are fixed, as in Core.Tests.
        var caseVariables = new Dictionary<string, string> { ["REGISTRY"] = "registry.example.com" };
        var loader = new PipelineLoader(new PipelineLoaderOptions { Variables = caseVariables });
        // Untimed warm-up: the first load of a process pays for the JIT, which a server pays once.
        loader.LoadFile(RepositoryRoot.File("config/pipelines.yaml"));

        var timings = new List<TimeSpan>();
        var firsts = new List<(string File, TimeSpan Took)>();
        var failures = new List<string>();
        var families = new Dictionary<string, (int Cases, int Exact)>();
        int rejected = 0, exact = 0, single = 0;

        void Count(string family, bool isExact)
        {
            var (cases, exacts) = families.GetValueOrDefault(family);
            families[family] = (cases + 1, exacts + (isExact ? 1 : 0));
        }

        var casesFolder = RepositoryRoot.File("tests/Core.Tests/Definitions/Cases");
        var written = Directory.EnumerateFiles(casesFolder).Where(f => f.EndsWith(".yaml", StringComparison.Ordinal) || f.EndsWith(".json", StringComparison.Ordinal)).Order(StringComparer.Ordinal).ToList();
        foreach (var file in written)
        {
            var name = Path.GetFileName(file);
            var content = File.ReadAllBytes(file);
            var expected = File.ReadAllText(Path.ChangeExtension(file, ".errors")).ReplaceLineEndings("\n").TrimEnd('\n');
            var (result, cold, warm) = Timed(() => loader.Load(content, name, casesFolder));
            timings.Add(warm);
            firsts.Add((name, cold));
            var actual = string.Join('\n', result.Diagnostics);
            var isExact = !result.Succeeded && actual == expected;
            rejected += result.Succeeded ? 0 : 1;
            exact += isExact ? 1 : 0;
            single += result.Diagnostics.Count == 1 ? 1 : 0;
            Count("hand-written (Core.Tests cases)", isExact);
            if (!isExact)
            {
                failures.Add($"{name}: expected `{expected}`, got `{actual}`");
            }
        }

        var generated = DefinitionCorpus.Generate(options.Seed);
        var emptyVariables = new PipelineLoader(new PipelineLoaderOptions { Variables = new Dictionary<string, string>() });
        foreach (var bad in generated)
        {
            var path = Path.Combine(folder, bad.Name);
            File.WriteAllBytes(path, bad.Content);
            var (result, cold, warm) = Timed(() => emptyVariables.LoadFile(path));
            timings.Add(warm);
            firsts.Add((bad.Name, cold));
            var at = $"{path}:{bad.Line}:{bad.Column}: error: ";
            var isExact = !result.Succeeded && result.Errors.Any(e => e.ToString().StartsWith(at, StringComparison.Ordinal) && e.Message.Contains(bad.Says, StringComparison.Ordinal));
            rejected += result.Succeeded ? 0 : 1;
            exact += isExact ? 1 : 0;
            single += result.Diagnostics.Count == 1 ? 1 : 0;
            Count(bad.Family, isExact);
            if (!isExact)
            {
                var got = result.Succeeded ? "it loaded" : string.Join(" | ", result.Diagnostics.Select(d => d.ToString().Replace(folder + "/", "", StringComparison.Ordinal)));
                failures.Add($"{bad.Name}: expected {bad.Line}:{bad.Column} saying \"{bad.Says}\", got `{Truncate(got)}`");
            }
        }

        var total = written.Count + generated.Count;
        var sorted = timings.Order().ToList();
        var slow = timings.Count(t => t >= Limit);
        var slowFirst = firsts.Where(f => f.Took >= Limit).ToList();
        TimeSpan At(double q) => sorted[Math.Clamp((int)Math.Ceiling(q * sorted.Count) - 1, 0, sorted.Count - 1)];
        return RowResult.Of(this) with
        {
            Passed = rejected == total && exact == total && slow == 0 && total >= 200,
            Cases = string.Create(CultureInfo.InvariantCulture, $"{total} files: {written.Count} hand-written, {generated.Count} generated in {families.Count - 1} families"),
            Outcome = string.Create(CultureInfo.InvariantCulture,
                $"{rejected} rejected, {exact} at the exact file:line:column; load p50 {Ms(At(0.5))}, p99 {Ms(At(0.99))}, max {Ms(sorted[^1])}, {slow} ≥ 100 ms; first load in the process: {slowFirst.Count} ≥ 100 ms{(slowFirst.Count == 0 ? "" : $" ({string.Join(", ", slowFirst.Select(f => $"{f.File} {Ms(f.Took)}"))})")}"),
            Schedule = $"Each file loaded once with `PipelineLoader` (fixed variables, so the machine's environment cannot leak in), timed with a stopwatch twice: its first load (after one untimed warm-up load of config/pipelines.yaml, as a `validate` process meets it) and a second one (as a long-running process meets it); the percentiles and the bar use the second, the first loads over 100 ms are listed. Hand-written cases must produce their `.errors` file exactly; a generated case must be refused with an error at the line and column of the mistake it was built with, saying what it must say. {single} of {total} produced exactly one diagnostic.",
            Notes =
            [
                "slowest first loads: " + string.Join(", ", firsts.OrderByDescending(s => s.Took).Take(5).Select(s => $"{s.File} {Ms(s.Took)}")),
                "families (cases / exact): " + string.Join(", ", families.Select(f => $"{f.Key} {f.Value.Cases}/{f.Value.Exact}")),
                .. failures.Take(15),
            ],
        };
    }

    private static (LoadResult Result, TimeSpan First, TimeSpan Second) Timed(Func<LoadResult> load)
    {
        var clock = Stopwatch.StartNew();
        var result = load();
        var first = clock.Elapsed;
        clock.Restart();
        load();
        return (result, first, clock.Elapsed);
    }

    private static string Ms(TimeSpan value) => string.Create(CultureInfo.InvariantCulture, $"{value.TotalMilliseconds:0.0} ms");

    private static string Truncate(string text) => text.Length > 300 ? text[..300] + "…" : text;
}
