namespace Pipelines.Bench;

/// <summary>
/// A set of benchmarks that share inputs, selected on the command line by <see cref="Name"/>
/// (<c>dotnet run -c Release --project bench -- definitions</c>). A later issue adds its own group
/// (planning, coordination, ...) to the list in Program.cs.
/// </summary>
internal interface IBenchmarkGroup
{
    /// <summary>Lowercase name the command-line filter matches, e.g. <c>definitions</c>.</summary>
    string Name { get; }

    /// <summary>Builds the inputs (not timed) and returns the benchmarks that use them.</summary>
    IEnumerable<Benchmark> Create();
}

/// <summary>One measured operation.</summary>
/// <param name="Name">What is measured, e.g. <c>load + validate</c>.</param>
/// <param name="Input">What it is measured on, e.g. <c>10,000 steps (1.2 MiB)</c>.</param>
/// <param name="Iterations">Measured runs; the median and the maximum are reported.</param>
/// <param name="Run">The operation. Its result is kept so the JIT cannot drop the work.</param>
/// <param name="Check">
/// Runs once before timing and throws when the operation does not do what the figure claims
/// (a load that should succeed fails, a hostile file is not refused): a fast wrong answer is no figure.
/// </param>
internal sealed record Benchmark(string Name, string Input, int Iterations, Func<object?> Run, Action<object?> Check);

/// <summary>
/// A set of benchmarks whose figures are not the wall time of one operation (throughput,
/// percentiles, counters read from RabbitMQ and PostgreSQL): it runs everything itself and prints its
/// own markdown report. Selected on the command line by <see cref="Name"/>, like <see cref="IBenchmarkGroup"/>.
/// </summary>
internal interface IReportGroup
{
    /// <summary>Lowercase name the command-line filter matches, e.g. <c>engine</c>.</summary>
    string Name { get; }

    /// <summary>The <c>--name N</c> settings this group reads, listed by <c>--help</c>.</summary>
    IReadOnlyList<BenchmarkOption> Options { get; }

    /// <summary>Runs the group and writes its report; returns the process exit code (0 when every figure was measured).</summary>
    int Run(IReadOnlyDictionary<string, int> options, TextWriter output, TextWriter progress);
}

/// <summary>A whole-number setting of a report group, e.g. <c>--seconds 8</c>.</summary>
internal sealed record BenchmarkOption(string Name, int Default, string Description);
