using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace Pipelines.Core.Telemetry;

/// <summary>
/// Traces and metrics of the engine (source and meter <c>Pipelines</c>). Each run is one trace: the
/// launcher opens it, MassTransit carries it through StartRun, every routing slip and every step,
/// and the run stores its trace parent so that work resumed later (the sweeper) joins it too.
/// </summary>
public static class PipelinesTelemetry
{
    public const string Name = "Pipelines";

    public static readonly ActivitySource Source = new(Name);

    private static readonly Meter Meter = new(Name);

    private static readonly Counter<long> RunsFinished = Meter.CreateCounter<long>("pipelines.runs.finished", description: "Runs that reached a terminal state, by pipeline and state.");

    private static readonly Histogram<double> StepDuration = Meter.CreateHistogram<double>("pipelines.step.duration", unit: "s", description: "Duration of step attempts, by pipeline, step and outcome.");

    /// <summary>Starts the span of a run's trace, as a child of the stored trace parent when there is one.</summary>
    public static Activity? StartRunActivity(string name, Guid runId, string pipeline, string? traceParent = null)
    {
        var activity = traceParent is not null && ActivityContext.TryParse(traceParent, null, out var parent)
            ? Source.StartActivity(name, ActivityKind.Internal, parent)
            : Source.StartActivity(name, ActivityKind.Internal);
        activity?.SetTag("pipelines.run_id", runId.ToString());
        activity?.SetTag("pipelines.pipeline", pipeline);
        return activity;
    }

    public static void RecordRunFinished(string pipeline, string state) =>
        RunsFinished.Add(1, new KeyValuePair<string, object?>("pipeline", pipeline), new KeyValuePair<string, object?>("state", state));

    public static void RecordStepAttempt(string pipeline, string step, string outcome, TimeSpan duration) =>
        StepDuration.Record(duration.TotalSeconds,
            new KeyValuePair<string, object?>("pipeline", pipeline),
            new KeyValuePair<string, object?>("step", step),
            new KeyValuePair<string, object?>("outcome", outcome));
}
