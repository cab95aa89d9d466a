using System.Globalization;

namespace Pipelines.Faults.Recording;

/// <summary>One execution of a demo handler, as the handler itself recorded it before doing anything else.</summary>
internal readonly record struct Execution(Guid Run, string Step, int Attempt);

/// <summary>
/// The side-effect ledger: every line <c>RUN STEP ATTEMPT</c> a demo handler appended (one file per
/// worker process, see <c>DemoHandlers.LedgerVariable</c>). It is written by the handlers, not by
/// the engine, so it shows what really ran, whatever the run store says.
/// </summary>
internal sealed class Ledger(IReadOnlyList<Execution> executions, int unreadable)
{
    public IReadOnlyList<Execution> Executions { get; } = executions;

    /// <summary>Lines that are not <c>RUN STEP ATTEMPT</c>: a process killed in the middle of an append.</summary>
    public int Unreadable { get; } = unreadable;

    public static Ledger Read(string folder)
    {
        var executions = new List<Execution>();
        var unreadable = 0;
        foreach (var file in Directory.EnumerateFiles(folder, "*.ledger"))
        {
            foreach (var line in File.ReadLines(file))
            {
                var parts = line.Split(' ');
                if (parts.Length == 3 && Guid.TryParse(parts[0], out var run) && int.TryParse(parts[2], NumberStyles.None, CultureInfo.InvariantCulture, out var attempt))
                {
                    executions.Add(new Execution(run, parts[1], attempt));
                }
                else if (line.Length > 0)
                {
                    unreadable++;
                }
            }
        }
        return new Ledger(executions, unreadable);
    }
}
