using Pipelines.Bench;
using Pipelines.Bench.Benchmarks;
using Pipelines.Bench.Benchmarks.Engine;

// Figures, not tests: nothing here fails on timing. Later issues add their groups to this list.
IBenchmarkGroup[] groups =
[
    new DefinitionBenchmarks(),
    new SchedulerBenchmarks(),
];

// Groups that print their own report: throughput, percentiles and counters rather than one operation's time.
IReportGroup[] reports =
[
    new EngineBenchmarks(),
    new ContainerBenchmarks(),
];

return BenchmarkRunner.Run(groups, reports, args, Console.Out, Console.Error);
