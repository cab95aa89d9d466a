using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;
using Pipelines.Core.Persistence;

namespace Pipelines.Core.Tests.Persistence;

public sealed class MigrationTests
{
    [Fact]
    public async Task Upgrading_a_store_sorts_old_errors_into_a_kind_and_an_exception_type()
    {
        await using var connection = new SqliteConnection("Data Source=:memory:");
        await connection.OpenAsync();
        await using var context = new SqliteRunStoreContext(new DbContextOptionsBuilder<SqliteRunStoreContext>()
            .UseSqlite(connection, o => o.MigrationsHistoryTable("__pipelines_migrations")).Options);
        var migrator = context.GetService<IMigrator>();
        var initial = context.Database.GetMigrations().First(m => m.EndsWith("_InitialRunStore", StringComparison.Ordinal));
        await migrator.MigrateAsync(initial);
        var run = Guid.NewGuid();
        await context.Database.ExecuteSqlAsync($"""
            INSERT INTO runs ("Id", "Pipeline", "DefinitionHash", "Input", "State", "CreatedAt", "Trigger", "RemainingChains", "Version")
            VALUES ({run}, 'p', 'h', {"{}"}, 'Failed', 0, 'api', 0, 0)
            """);
        var old = new[] { ("lost", "worker-lost"), ("back", "handed-back"), ("failed", "Pipelines.Core.Execution.StepFailedException"), ("threw", "System.InvalidOperationException") };
        foreach (var (step, type) in old)
        {
            await context.Database.ExecuteSqlAsync($"""
                INSERT INTO step_attempts ("RunId", "Step", "Number", "Worker", "StartedAt", "State", "ErrorType", "ErrorMessage")
                VALUES ({run}, {step}, 1, 'w', 0, 'Failed', {type}, 'm')
                """);
        }

        await context.Database.MigrateAsync();

        var attempts = await context.Attempts.OrderBy(a => a.Step).Select(a => new { a.Step, a.ErrorKind, a.ErrorType }).ToListAsync();
        Assert.Equal(
            [("back", "handed-back", null), ("failed", "error", null), ("lost", "worker-lost", null), ("threw", "exception", "System.InvalidOperationException")],
            attempts.Select(a => (a.Step, a.ErrorKind, a.ErrorType)));
    }
}
