using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata;
using Microsoft.EntityFrameworkCore.Storage.ValueConversion;
using Npgsql;

namespace Pipelines.Core.Persistence;

/// <summary>
/// Inserts new rows on PostgreSQL with binary <c>COPY</c>, in the unit of work's transaction. Tables,
/// columns, types and conversions come from the EF Core model, so the schema stays in one place. A
/// burst of runs (a schedule's 167 fires in one second, each with its steps and chains) is about 700
/// rows; as separate INSERTs, PostgreSQL parses and plans each and EF Core tracks each, and that was
/// most of the time the burst's last run waited to be stored.
/// </summary>
internal static class PostgresCopy
{
    public static async Task InsertAsync<T>(RunStoreContext context, IReadOnlyCollection<T> rows, CancellationToken cancellationToken) where T : class
    {
        if (rows.Count == 0)
        {
            return;
        }
        var entity = context.Model.FindEntityType(typeof(T)) ?? throw new InvalidOperationException($"{typeof(T).Name} is not in the run store's model");
        var table = StoreObjectIdentifier.Table(entity.GetTableName()!, entity.GetSchema());
        var columns = entity.GetProperties().Select(property => new Column(property, table)).ToList();
        var connection = (NpgsqlConnection)context.Database.GetDbConnection();
        if (entity.GetForeignKeys().Any())
        {
            await LookUpReferencedRowsByKeyAsync(connection, cancellationToken);
        }
        await using var import = await connection.BeginBinaryImportAsync(
            $"COPY {(table.Schema is { } schema ? $"{Quote(schema)}." : "")}{Quote(table.Name)} ({string.Join(", ", columns.Select(column => Quote(column.Name)))}) FROM STDIN (FORMAT BINARY)", cancellationToken);
        foreach (var row in rows)
        {
            await import.StartRowAsync(cancellationToken);
            foreach (var column in columns)
            {
                if (column.ValueOf(row) is { } value)
                {
                    await import.WriteAsync(value, column.DataType, cancellationToken);
                }
                else
                {
                    await import.WriteNullAsync(cancellationToken);
                }
            }
        }
        await import.CompleteAsync(cancellationToken);
    }

    /// <summary>
    /// Has this transaction's foreign-key checks find each referenced row through its key's index. PostgreSQL
    /// plans a connection's check of a foreign key once and keeps the plan until the referenced table is next
    /// analyzed; planned while <c>runs</c> held a page or two (a new database's first fires) it reads the table
    /// from the start, and a new run is at its end: every check read the whole table, and a burst's copy took
    /// 260 ms instead of 12 within a minute of the first fires (bench/README.md). The setting lasts until the
    /// transaction ends, and a unit that copies new runs plans nothing else.
    /// </summary>
    private static async Task LookUpReferencedRowsByKeyAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand("SET LOCAL enable_seqscan = off", connection);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    private static string Quote(string name) => $"\"{name.Replace("\"", "\"\"", StringComparison.Ordinal)}\"";

    private sealed class Column(IProperty property, StoreObjectIdentifier table)
    {
        private readonly IClrPropertyGetter _getter = property.GetGetter();
        private readonly ValueConverter? _converter = property.GetTypeMapping().Converter;
        private readonly bool _generatedOnAdd = property.ValueGenerated.HasFlag(ValueGenerated.OnAdd);

        public string Name { get; } = property.GetColumnName(table) ?? throw new InvalidOperationException($"{property.Name} has no column in {table.Name}");

        /// <summary>The column's type as the schema declares it, e.g. <c>character varying(128)</c>: Npgsql reads the modifiers itself.</summary>
        public string DataType { get; } = property.GetColumnType();

        public object? ValueOf(object row)
        {
            var value = _getter.GetClrValueUsingContainingEntity(row);
            // EF Core would generate a key left unset; COPY would store the empty value under it.
            if (_generatedOnAdd && Equals(value, property.Sentinel))
            {
                throw new InvalidOperationException($"{property.DeclaringType.DisplayName()}.{property.Name} is not set: new rows copied into PostgreSQL carry their own keys");
            }
            return value is not null && _converter is not null ? _converter.ConvertToProvider(value) : value;
        }
    }
}
