using System.Collections.Concurrent;
using Microsoft.EntityFrameworkCore;
using Pipelines.Core.Coordination;
using Pipelines.Core.Persistence;
using Pipelines.Core.Runs;

namespace Pipelines.Core.Tests.Coordination;

/// <summary>Runs started while others are being stored go in together, and their starts are sent together; what each caller then hears.</summary>
public sealed class NewRunWriterTests : IAsyncLifetime, IDisposable
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(10);

    private readonly string _folder = Directory.CreateTempSubdirectory("pipelines-writer-").FullName;
    private readonly ConcurrentDictionary<Guid, Func<Task>> _sends = [];
    private readonly ConcurrentDictionary<Guid, TaskCompletionSource> _sendsBegun = [];
    private readonly ConcurrentBag<HashSet<Guid>> _sendCalls = [];
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
    public async Task The_starts_of_one_batch_are_sent_together_and_its_callers_go_on_once_they_are_sent()
    {
        var (plugged, second, third) = await StartTwoTogetherAsync();
        var sent = new TaskCompletionSource();
        _sends[third.Run.Id] = () => sent.Task;
        ReleasePlug();

        await _sendsBegun[third.Run.Id].Task.WaitAsync(Patience);
        await Task.Delay(200);
        Assert.False(second.Task.IsCompleted, "the second run's caller went on while the batch's starts were still being sent");
        Assert.Contains(_sendCalls, call => call.SetEquals([second.Run.Id, third.Run.Id]));

        sent.SetResult();
        Assert.True((await second.Task.WaitAsync(Patience)).Created);
        Assert.True((await third.Task.WaitAsync(Patience)).Created);
        Assert.True((await plugged.WaitAsync(Patience)).Created);
    }

    [Fact]
    public async Task Starts_that_cannot_be_sent_fail_their_callers_and_the_runs_stay_stored()
    {
        var (plugged, second, third) = await StartTwoTogetherAsync();
        _sends[third.Run.Id] = () => Task.FromException(new InvalidOperationException("the broker is unreachable"));
        ReleasePlug();

        foreach (var started in new[] { second, third })
        {
            var error = await Assert.ThrowsAsync<InvalidOperationException>(() => started.Task.WaitAsync(Patience));
            Assert.Equal("the broker is unreachable", error.Message);
            var stored = await _store.ReadAsync(context => context.Runs.Where(r => r.Id == started.Run.Id).Select(r => r.State).SingleAsync());
            Assert.Equal(RunState.Pending, stored);
        }
        Assert.True((await plugged.WaitAsync(Patience)).Created);
    }

    private void ReleasePlug() => _plug.Set();

    /// <summary>
    /// Stores a first run whose start holds the writer until <see cref="ReleasePlug"/>, and meanwhile asks
    /// for two more runs: they wait together and are stored in the writer's next batch.
    /// </summary>
    private async Task<(Task<LaunchedRun> Plugged, Started Second, Started Third)> StartTwoTogetherAsync()
    {
        var writer = new NewRunWriter(_store, (runs, _) =>
        {
            _sendCalls.Add([.. runs.Select(run => run.Id)]);
            foreach (var run in runs)
            {
                _sendsBegun[run.Id].TrySetResult();
            }
            return runs.Select(run => _sends.GetValueOrDefault(run.Id)).FirstOrDefault(send => send is not null) is { } send ? send() : Task.CompletedTask;
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
