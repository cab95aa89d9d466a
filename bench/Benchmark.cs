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
