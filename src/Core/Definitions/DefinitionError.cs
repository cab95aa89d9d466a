namespace Pipelines.Core.Definitions;

/// <summary>A 1-based line and column in a definition file.</summary>
public readonly record struct SourcePosition(int Line, int Column) : IComparable<SourcePosition>
{
    public static readonly SourcePosition Start = new(1, 1);

    public int CompareTo(SourcePosition other) =>
        Line != other.Line ? Line.CompareTo(other.Line) : Column.CompareTo(other.Column);

    public static bool operator <(SourcePosition left, SourcePosition right) => left.CompareTo(right) < 0;
    public static bool operator >(SourcePosition left, SourcePosition right) => left.CompareTo(right) > 0;
    public static bool operator <=(SourcePosition left, SourcePosition right) => left.CompareTo(right) <= 0;
    public static bool operator >=(SourcePosition left, SourcePosition right) => left.CompareTo(right) >= 0;

    public override string ToString() => $"{Line}:{Column}";
}

public enum DiagnosticSeverity
{
    Error,
    Warning,
}

/// <summary>
/// One problem in a definition file, printed as <c>FILE:LINE:COLUMN: error: MESSAGE</c> — the form
/// compilers use, so editors and CI annotate the offending key or value. Warnings never stop a load.
/// </summary>
public sealed record DefinitionError(string File, SourcePosition Position, string Message, DiagnosticSeverity Severity = DiagnosticSeverity.Error)
{
    public bool IsWarning => Severity == DiagnosticSeverity.Warning;

    public override string ToString() =>
        $"{File}:{Position.Line}:{Position.Column}: {(IsWarning ? "warning" : "error")}: {Message}";
}
