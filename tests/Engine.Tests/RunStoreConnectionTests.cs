using Microsoft.EntityFrameworkCore;
using Npgsql;
using Pipelines.Core.Persistence;
using Pipelines.Tests;

namespace Pipelines.Engine.Tests;

/// <summary>
/// Every step and every schedule fire runs the same few statements; PostgreSQL should plan each once
/// per connection, not at every call.
/// </summary>
public sealed class RunStoreConnectionTests
{
    [ServiceFact]
    public async Task A_statement_the_store_runs_again_and_again_is_prepared_on_its_connection()
    {
        Assert.Equal(1, await PreparedAfterRepeatedQueriesAsync(extraSettings: ""));
    }

    [ServiceFact]
    public async Task Max_Auto_Prepare_0_in_the_connection_string_turns_preparing_off()
    {
        Assert.Equal(0, await PreparedAfterRepeatedQueriesAsync(extraSettings: ";Max Auto Prepare=0"));
    }

    private static async Task<long> PreparedAfterRepeatedQueriesAsync(string extraSettings)
    {
        await using var database = await ScratchPostgres.CreateAsync("connection_tests");
        using var store = new RunStore(new RunStoreOptions
        {
            Provider = RunStoreProvider.PostgreSql,
            ConnectionString = database.ConnectionString + extraSettings,
        });
        await store.MigrateAsync(CancellationToken.None);
        return await store.ReadAsync(async context =>
        {
            // One physical connection for the whole read, so its prepared statements can be seen.
            await context.Database.OpenConnectionAsync();
            for (var i = 0; i < 10; i++)
            {
                await context.Runs.Where(r => r.Pipeline == "nightly-report").CountAsync();
            }
            var connection = (NpgsqlConnection)context.Database.GetDbConnection();
            await using var command = new NpgsqlCommand(
                "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE '%nightly-report%'", connection);
            return (long)(await command.ExecuteScalarAsync())!;
        });
    }
}
