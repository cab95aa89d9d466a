using System.Globalization;
using System.Text;
using Pipelines.Faults.Recording;

namespace Pipelines.Faults.Report;

/// <summary>The report: the header with what ran where, the two tables, then each row's schedule and notes.</summary>
internal static class ResultTable
{
    public static string Render(IReadOnlyList<RowResult> rows, string header)
    {
        var text = new StringBuilder();
        text.AppendLine(header).AppendLine();
        var faults = rows.Where(r => r.Kind == RowKind.Fault).ToList();
        if (faults.Count > 0)
        {
            text.AppendLine("| fault | bar | calls ok / refused / indeterminate | accepted | lost | duplicate effects | raw re-executions | recovered | p50 | p99 | recovery | result |");
            text.AppendLine("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|");
            foreach (var row in faults)
            {
                var runs = row.Runs;
                text.AppendLine(CultureInfo.InvariantCulture, $"| {row.Title} | {row.Bar} | {Calls(runs)} | {Figure(runs?.Accepted)} | {Figure(runs?.Lost)} | {Figure(runs?.DuplicateEffects)} | {Figure(runs?.RawReexecutions)} | {Figure(runs?.Recovered)} | {RowResult.Seconds(runs?.P50)} | {RowResult.Seconds(runs?.P99)} | {row.Recovery} | {row.Verdict} |");
            }
            text.AppendLine();
        }
        var hostile = rows.Where(r => r.Kind == RowKind.HostileInput).ToList();
        if (hostile.Count > 0)
        {
            text.AppendLine("| hostile input | bar | cases | outcome | result |");
            text.AppendLine("|---|---|---|---|---|");
            foreach (var row in hostile)
            {
                text.AppendLine(CultureInfo.InvariantCulture, $"| {row.Title} | {row.Bar} | {row.Cases} | {row.Outcome} | {row.Verdict} |");
            }
            text.AppendLine();
        }
        foreach (var row in rows)
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"**{row.Title}** (`{row.Id}`, {RowResult.Seconds(row.Took)}). {row.Schedule}");
            if (row.Pending is { } pending)
            {
                text.AppendLine(CultureInfo.InvariantCulture, $"- pending: {pending}");
            }
            if (row.Runs is { } runs)
            {
                text.AppendLine(CultureInfo.InvariantCulture, $"- runs: {runs.Succeeded} succeeded, {runs.FailedRuns} failed, {runs.Lost} lost; {runs.Executions} handler executions, {runs.MissingEffects} succeeded steps without an execution; attempt errors: {Errors(runs)}");
                foreach (var example in runs.Examples)
                {
                    text.AppendLine(CultureInfo.InvariantCulture, $"- {example}");
                }
            }
            foreach (var note in row.Notes)
            {
                text.AppendLine(CultureInfo.InvariantCulture, $"- {note}");
            }
            text.AppendLine();
        }
        return text.ToString();
    }

    private static string Calls(Reconciliation? runs) => runs is null || runs.Calls == 0
        ? "—"
        : $"{RowResult.Count(runs.Ok)} / {RowResult.Count(runs.Refused)} / {RowResult.Count(runs.Indeterminate)}";

    private static string Figure(int? value) => value is { } v ? RowResult.Count(v) : "—";

    private static string Errors(Reconciliation runs) => runs.AttemptErrors.Count == 0
        ? "none"
        : string.Join(", ", runs.AttemptErrors.OrderBy(e => e.Key, StringComparer.Ordinal).Select(e => $"{e.Key} {e.Value}"));
}
