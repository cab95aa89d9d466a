using System.Globalization;
using Pipelines.Faults.Recording;

namespace Pipelines.Faults.Report;

/// <summary>Which table a row belongs to.</summary>
internal enum RowKind
{
    Fault,
    HostileInput,
}

/// <summary>One row of the published table, with the facts behind it.</summary>
internal sealed record RowResult
{
    public required string Id { get; init; }
    public required string Title { get; init; }
    public required RowKind Kind { get; init; }
    /// <summary>What the row must show, from issue 7.</summary>
    public required string Bar { get; init; }
    /// <summary>Met, missed, or null when the row could not run (then <see cref="Pending"/> says why).</summary>
    public bool? Passed { get; init; }
    public string? Pending { get; init; }
    /// <summary>What was done and when: the fault schedule.</summary>
    public string Schedule { get; init; } = "";
    public Reconciliation? Runs { get; init; }
    /// <summary>The row's recovery figure, already worded (e.g. "takeover p50 5.8 s, max 7.1 s").</summary>
    public string Recovery { get; init; } = "—";
    /// <summary>For hostile-input rows: cases, how many were handled as required, and the slowest.</summary>
    public string Cases { get; init; } = "";
    public string Outcome { get; init; } = "";
    public IReadOnlyList<string> Notes { get; init; } = [];
    public TimeSpan Took { get; init; }

    /// <summary>A result of <paramref name="row"/>, to be completed with <c>with { ... }</c>.</summary>
    public static RowResult Of(Rows.IRow row)
    {
        ArgumentNullException.ThrowIfNull(row);
        return new() { Id = row.Id, Title = row.Title, Kind = row.Kind, Bar = row.Bar };
    }

    public string Verdict => Passed switch
    {
        true => "met",
        false => "**missed**",
        null => "pending",
    };

    public static string Seconds(TimeSpan? value) => value is { } v
        ? v.TotalSeconds >= 10 ? string.Create(CultureInfo.InvariantCulture, $"{v.TotalSeconds:0} s")
        : v.TotalSeconds >= 1 ? string.Create(CultureInfo.InvariantCulture, $"{v.TotalSeconds:0.0} s")
        : string.Create(CultureInfo.InvariantCulture, $"{v.TotalMilliseconds:0} ms")
        : "—";

    public static string Count(int value) => value.ToString("N0", CultureInfo.InvariantCulture);
}
