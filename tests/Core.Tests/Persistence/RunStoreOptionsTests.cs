using Npgsql;
using Pipelines.Core.Persistence;

namespace Pipelines.Core.Tests.Persistence;

public sealed class RunStoreOptionsTests
{
    private static NpgsqlConnectionStringBuilder Effective(string connectionString) =>
        new(new RunStoreOptions { Provider = RunStoreProvider.PostgreSql, ConnectionString = connectionString }.EffectiveConnectionString);

    [Fact]
    public void A_postgres_pool_keeps_the_connections_it_opened_and_prepares_repeated_statements_unless_told_otherwise()
    {
        var defaults = Effective("Host=db;Username=pipelines");
        Assert.Equal(defaults.MaxPoolSize, defaults.MinPoolSize);
        Assert.Equal(64, defaults.MaxAutoPrepare);

        var bounded = Effective("Host=db;Maximum Pool Size=20");
        Assert.Equal(20, bounded.MinPoolSize);

        var chosen = Effective("Host=db;Minimum Pool Size=0;Max Auto Prepare=0");
        Assert.Equal(0, chosen.MinPoolSize);
        Assert.Equal(0, chosen.MaxAutoPrepare);
    }
}
