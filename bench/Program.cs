using Pipelines.Bench;
using Pipelines.Bench.Benchmarks;

// Figures, not tests: nothing here fails on timing. Later issues add their groups to this list.
IBenchmarkGroup[] groups =
[
    new DefinitionBenchmarks(),
    new SchedulerBenchmarks(),
];

return BenchmarkRunner.Run(groups, args, Console.Out, Console.Error);
