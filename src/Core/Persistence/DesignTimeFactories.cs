using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Design;

namespace Pipelines.Core.Persistence;

// Used only by `dotnet ef migrations add`; see src/Core/README.md.
internal sealed class PostgresDesignTimeFactory : IDesignTimeDbContextFactory<PostgresRunStoreContext>
{
    public PostgresRunStoreContext CreateDbContext(string[] args) =>
        new(new DbContextOptionsBuilder<PostgresRunStoreContext>()
            .UseNpgsql("Host=127.0.0.1;Database=pipelines", o => o.MigrationsHistoryTable("__pipelines_migrations"))
            .Options);
}

internal sealed class SqliteDesignTimeFactory : IDesignTimeDbContextFactory<SqliteRunStoreContext>
{
    public SqliteRunStoreContext CreateDbContext(string[] args) =>
        new(new DbContextOptionsBuilder<SqliteRunStoreContext>()
            .UseSqlite("Data Source=design.db", o => o.MigrationsHistoryTable("__pipelines_migrations"))
            .Options);
}
