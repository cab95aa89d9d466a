namespace Pipelines.Core.Persistence.Migrations;

/// <summary>
/// Before <c>ErrorKind</c>, <c>ErrorType</c> held either a framework kind (<c>worker-lost</c>,
/// <c>handed-back</c>, <c>cancelled</c>) or an exception type; the kind of a
/// <c>StepFailedException</c> was only in its message, so those rows get the generic <c>error</c>.
/// The same SQL runs on PostgreSQL and SQLite.
/// </summary>
internal static class StepErrorKindBackfill
{
    public static string For(string table) => $"""
        UPDATE {table} SET
            "ErrorKind" = CASE
                WHEN "ErrorType" IN ('worker-lost', 'handed-back', 'cancelled') THEN "ErrorType"
                WHEN "ErrorType" = 'Pipelines.Core.Execution.StepFailedException' THEN 'error'
                ELSE 'exception' END,
            "ErrorType" = CASE
                WHEN "ErrorType" IN ('worker-lost', 'handed-back', 'cancelled', 'Pipelines.Core.Execution.StepFailedException') THEN NULL
                ELSE "ErrorType" END
        WHERE "ErrorType" IS NOT NULL;
        """;
}
