using System.Collections.Concurrent;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Pipelines.Core.Definitions;
using Pipelines.Core.Execution;

namespace Pipelines.Workers.Tests.Containers;

/// <summary>Step definitions written as users write them, and the context a worker would give them.</summary>
internal static class TestSteps
{
    /// <summary>The steps of a one-pipeline definition file; <c>$IMAGE</c> is the test image.</summary>
    public static IReadOnlyList<StepDefinition> Load(string yaml, IReadOnlyDictionary<string, string>? variables = null)
    {
        var values = new Dictionary<string, string> { ["IMAGE"] = DockerTestEngine.TestImage };
        foreach (var (name, value) in variables ?? new Dictionary<string, string>())
        {
            values[name] = value;
        }
        var result = new PipelineLoader(new PipelineLoaderOptions { Variables = values })
            .Load(System.Text.Encoding.UTF8.GetBytes(yaml), "test.yaml", Path.GetTempPath());
        Assert.True(result.Succeeded, string.Join(Environment.NewLine, result.Diagnostics));
        return result.Definitions!.Pipelines.Values.Single().Steps;
    }

    /// <summary>A fresh folder that the containers' user (nobody) may write to.</summary>
    public static DirectoryInfo WritableFolder(string prefix)
    {
        var folder = Directory.CreateTempSubdirectory(prefix);
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(folder.FullName, (UnixFileMode)0b111_111_111);
        }
        return folder;
    }

    public static StepDefinition One(string yaml, IReadOnlyDictionary<string, string>? variables = null) => Load(yaml, variables)[0];

    public static StepContext Context(StepDefinition step, RecordingStepLog? log = null,
        JsonObject? payload = null, IReadOnlyDictionary<string, JsonNode?>? inputs = null, IReadOnlyDictionary<string, string>? secrets = null,
        Guid? runId = null, int attempt = 1, CancellationToken cancellationToken = default) => new()
    {
        RunId = runId ?? Guid.NewGuid(),
        Pipeline = "test",
        Step = step.Name,
        Event = payload ?? [],
        Inputs = inputs ?? new Dictionary<string, JsonNode?>(),
        Attempt = attempt,
        Logger = NullLogger.Instance,
        CancellationToken = cancellationToken,
        Definition = step,
        Log = log ?? new RecordingStepLog(),
        Secrets = new RevealedSecrets(new DictionarySecrets(secrets ?? new Dictionary<string, string>())),
    };
}

/// <summary>Waiting on state, never on a guessed delay.</summary>
internal static class Wait
{
    /// <summary>Polls <paramref name="condition"/> until it holds; fails saying it never did <paramref name="what"/> after two minutes.</summary>
    public static async Task UntilAsync(Func<Task<bool>> condition, string what)
    {
        var deadline = DateTimeOffset.UtcNow.AddMinutes(2);
        while (!await condition())
        {
            Assert.True(DateTimeOffset.UtcNow < deadline, $"never {what}");
            await Task.Delay(20);
        }
    }
}

internal sealed record LogLine(string Stream, string Text, DateTimeOffset? Timestamp);

/// <summary>An in-memory step log that also lets a test wait for a line.</summary>
internal sealed class RecordingStepLog : IStepLog
{
    private readonly ConcurrentQueue<LogLine> _lines = new();
    private readonly ConcurrentDictionary<string, TaskCompletionSource> _awaited = new();

    public IReadOnlyList<LogLine> Lines => [.. _lines];

    public string Text => string.Join('\n', _lines.Select(l => l.Text));

    public void Write(string stream, string line, DateTimeOffset? timestamp = null)
    {
        _lines.Enqueue(new LogLine(stream, line, timestamp));
        foreach (var (text, waiter) in _awaited)
        {
            if (line.Contains(text, StringComparison.Ordinal))
            {
                waiter.TrySetResult();
            }
        }
    }

    /// <summary>Completes when a line containing <paramref name="text"/> has been written.</summary>
    public Task WhenWrittenAsync(string text)
    {
        var waiter = _awaited.GetOrAdd(text, _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
        if (_lines.Any(l => l.Text.Contains(text, StringComparison.Ordinal)))
        {
            waiter.TrySetResult();
        }
        return waiter.Task.WaitAsync(TimeSpan.FromSeconds(60));
    }
}

internal sealed class DictionarySecrets(IReadOnlyDictionary<string, string> values) : ISecretResolver
{
    public string? Resolve(string name) => values.GetValueOrDefault(name);
}

/// <summary>Every message the host logs, with its exception, as it would reach a log file.</summary>
internal sealed class RecordingLoggerProvider : ILoggerProvider
{
    private readonly ConcurrentQueue<string> _lines = new();

    public IReadOnlyList<string> Lines => [.. _lines];

    public ILogger CreateLogger(string categoryName) => new Logger(categoryName, _lines);

    public void Dispose()
    {
    }

    private sealed class Logger(string category, ConcurrentQueue<string> lines) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            lines.Enqueue($"{logLevel} {category}: {formatter(state, exception)}{(exception is null ? "" : "\n" + exception)}");
    }
}
