using System.Collections.Concurrent;
using Microsoft.EntityFrameworkCore;
using Pipelines.Core.Coordination;
using Pipelines.Core.Persistence;
using Pipelines.Core.Runs;

namespace Pipelines.Core.Tests.Coordination;

/// <summary>Runs started while others are being stored go in together; what each caller then hears.</summary>
public sealed class NewRunWriterTests : IAsyncLifetime, IDisposable
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(10);

    private readonly string _folder = Directory.CreateTempSubdirectory("pipelines-writer-").FullName;
    private readonly ConcurrentDictionary<Guid, Func<Task>> _sends = [];
    private readonly ConcurrentDictionary<Guid, TaskCompletionSource> _sendsBegun = [];
    private readonly ManualResetEventSlim _plug = new();
    private readonly RunStore _store;

    public NewRunWriterTests() =>
        _store = new RunStore(new RunStoreOptions { ConnectionString = $"Data Source={Path.Combine(_folder, "runs.db")}" });

    public Task InitializeAsync() => _store.MigrateAsync(CancellationToken.None);

    public Task DisposeAsync() => Task.CompletedTask;

    public void Dispose()
    {
        _plug.Dispose();
        _store.Dispose();
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        Directory.Delete(_folder, recursive: true);
    }

    [Fact]
    public async Task Callers_of_one_batch_go_on_together_once_every_start_of_it_is_sent()
    {
        var (plugged, second, third) = await StartTwoTogetherAsync();
        var thirdSent = new TaskCompletionSource();
        _sends[third.Run.Id] = () => thirdSent.Task;
        ReleasePlug();

        await _sendsBegun[third.Run.Id].Task.WaitAsync(Patience);
        await Task.Delay(200);
        Assert.False(second.Task.IsCompleted, "the second run's caller went on while the third run's start was still being sent");

        thirdSent.SetResult();
        Assert.True((await second.Task.WaitAsync(Patience)).Created);
        Assert.True((await third.Task.WaitAsync(Patience)).Created);
        Assert.True((await plugged.WaitAsync(Patience)).Created);
    }

    [Fact]
    public async Task A_start_that_cannot_be_sent_fails_only_its_own_caller_and_its_run_stays_stored()
    {
        var (plugged, second, third) = await StartTwoTogetherAsync();
        _sends[third.Run.Id] = () => Task.FromException(new InvalidOperationException("the broker is unreachable"));
        ReleasePlug();

        Assert.True((await second.Task.WaitAsync(Patience)).Created);
        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => third.Task.WaitAsync(Patience));
        Assert.Equal("the broker is unreachable", error.Message);
        var stored = await _store.ReadAsync(context => context.Runs.Where(r => r.Id == third.Run.Id).Select(r => r.State).SingleAsync());
        Assert.Equal(RunState.Pending, stored);
        Assert.True((await plugged.WaitAsync(Patience)).Created);
    }

    private void ReleasePlug() => _plug.Set();

    /// <summary>
    /// Stores a first run whose start holds the writer until <see cref="ReleasePlug"/>, and meanwhile asks
    /// for two more runs: they wait together and are stored in the writer's next batch.
    /// </summary>
    private async Task<(Task<LaunchedRun> Plugged, Started Second, Started Third)> StartTwoTogetherAsync()
    {
        var writer = new NewRunWriter(_store, (run, _) =>
        {
            _sendsBegun[run.Id].TrySetResult();
            return _sends.TryGetValue(run.Id, out var send) ? send() : Task.CompletedTask;
        });
        var plug = NewRun();
        _sends[plug.Id] = () =>
        {
            // Called by the writer itself, after the first batch is stored: it takes no next batch until this returns.
            _plug.Wait(Patience);
            return Task.CompletedTask;
        };
        var plugged = writer.StoreAsync(new NewRun(plug, [], []), start: true, CancellationToken.None);
        await _sendsBegun[plug.Id].Task.WaitAsync(Patience);
        return (plugged, Start(writer), Start(writer));
    }

    private Started Start(NewRunWriter writer)
    {
        var run = NewRun();
        return new Started(run, writer.StoreAsync(new NewRun(run, [], []), start: true, CancellationToken.None));
    }

    private RunRecord NewRun()
    {
        var run = new RunRecord { Id = Guid.NewGuid(), Pipeline = "report", DefinitionHash = "h", State = RunState.Pending, CreatedAt = DateTimeOffset.UtcNow };
        _sendsBegun[run.Id] = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        return run;
    }

    private sealed record Started(RunRecord Run, Task<LaunchedRun> Task);
}
