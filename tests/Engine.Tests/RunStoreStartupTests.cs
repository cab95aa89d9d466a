using System.Net;
using System.Net.Sockets;
using Microsoft.EntityFrameworkCore;
using Npgsql;
using Pipelines.Core.Persistence;
using Pipelines.Tests;

namespace Pipelines.Engine.Tests;

/// <summary>Processes of a deployment often start before their database does.</summary>
public sealed class RunStoreStartupTests
{
    [ServiceFact]
    public async Task Migrating_waits_for_a_database_that_is_still_starting()
    {
        await using var database = await ScratchPostgres.CreateAsync("startup_tests");
        var port = FreePort();
        var store = new RunStore(new RunStoreOptions
        {
            Provider = RunStoreProvider.PostgreSql,
            ConnectionString = new NpgsqlConnectionStringBuilder(database.ConnectionString) { Host = "127.0.0.1", Port = port, Pooling = false }.ConnectionString,
        });

        // Nothing listens on the port yet: the database "starts" 3 s after the process.
        var migration = store.MigrateAsync(CancellationToken.None);
        await Task.Delay(TimeSpan.FromSeconds(3));
        Assert.False(migration.IsCompleted, "migrating should wait while the database cannot be reached");
        using var forwarder = new TcpForwarder(port, new NpgsqlConnectionStringBuilder(database.ConnectionString));
        await migration.WaitAsync(TimeSpan.FromSeconds(60));

        Assert.Equal(0, await store.ReadAsync(c => c.Runs.CountAsync()));
    }

    private static int FreePort()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        return ((IPEndPoint)probe.LocalEndpoint).Port;
    }

    /// <summary>Listens on <c>port</c> and passes every connection through to the real database server.</summary>
    private sealed class TcpForwarder : IDisposable
    {
        private readonly TcpListener _listener;
        private readonly CancellationTokenSource _stop = new();

        public TcpForwarder(int port, NpgsqlConnectionStringBuilder target)
        {
            _listener = new TcpListener(IPAddress.Loopback, port);
            _listener.Start();
            _ = AcceptAsync(target.Host!, target.Port);
        }

        private async Task AcceptAsync(string host, int port)
        {
            try
            {
                while (true)
                {
                    var client = await _listener.AcceptTcpClientAsync(_stop.Token);
                    var server = new TcpClient();
                    await server.ConnectAsync(host, port, _stop.Token);
                    _ = PumpAsync(client, server);
                }
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
            }
        }

        private async Task PumpAsync(TcpClient client, TcpClient server)
        {
            using (client)
            using (server)
            {
                try
                {
                    await Task.WhenAny(
                        client.GetStream().CopyToAsync(server.GetStream(), _stop.Token),
                        server.GetStream().CopyToAsync(client.GetStream(), _stop.Token));
                }
                catch (Exception e) when (e is OperationCanceledException or IOException)
                {
                }
            }
        }

        public void Dispose()
        {
            _stop.Cancel();
            _listener.Stop();
            _stop.Dispose();
        }
    }
}
