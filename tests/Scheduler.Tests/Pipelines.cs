namespace Pipelines.Scheduler.Tests;

/// <summary>Definition files the tests load.</summary>
internal static class Pipelines
{
    /// <summary>One pipeline, <c>report</c>, with a typed parameter and no schedule.</summary>
    public const string Report = """
        pipelines:
          report:
            parameters:
              day: { type: string, default: "2026-01-01" }
            steps:
              - name: build
                handler: demo.build
        """;

    /// <summary><c>report</c> with <paramref name="schedules"/> (YAML list items, indented for the pipeline).</summary>
    public static string ReportWith(string schedules) => Report + "\n    schedules:\n" + schedules;
}
