using System.Text.RegularExpressions;
using Pipelines.Tests;

namespace Pipelines.Api.Tests.EndToEnd;

/// <summary>
/// One process of the API binary (<c>src/Api</c>'s build output), started with settings in its
/// environment; its URL is read from the line it logs when it listens. Stopped with SIGTERM, as an
/// orchestrator would, then killed if it does not stop in time.
/// </summary>
internal sealed partial class HostProcess : IAsyncDisposable
{
    private readonly ChildProcess _process;
    private readonly string _name;
    private readonly Task<Uri> _listening;

    private HostProcess(ChildProcess process, string name, Task<Uri> listening)
    {
        _process = process;
        _name = name;
        _listening = listening;
    }

    public Uri Url => _listening.Result;

    /// <summary>What the process printed, under its name.</summary>
    public string Output => $"--- {_name} ---{Environment.NewLine}{_process.Output}";

    public static async Task<HostProcess> StartAsync(string name, IReadOnlyDictionary<string, string> environment, string workingDirectory)
    {
        var listening = new TaskCompletionSource<Uri>(TaskCreationOptions.RunContinuationsAsynchronously);
        var process = ChildProcess.Start(ApiAssembly(), [], environment, workingDirectory, line =>
        {
            if (Listening().Match(line) is { Success: true } match)
            {
                listening.TrySetResult(new Uri(match.Groups["url"].Value));
            }
        });
        var host = new HostProcess(process, name, listening.Task);
        _ = process.WaitForExitAsync().ContinueWith(_ =>
        {
            // Only while it starts: once it listens, its exit is the test's own doing.
            if (!listening.Task.IsCompleted)
            {
                listening.TrySetException(new InvalidOperationException($"{name} exited with {process.ExitCode}:\n{host.Output}"));
            }
        }, TaskScheduler.Default);
        try
        {
            await listening.Task.WaitAsync(TimeSpan.FromSeconds(60));
        }
        catch
        {
            await host.DisposeAsync();
            throw;
        }
        return host;
    }

    /// <summary>The API binary built beside these tests, in the same configuration.</summary>
    private static string ApiAssembly()
    {
        var configuration = AppContext.BaseDirectory.Contains($"{Path.DirectorySeparatorChar}Release{Path.DirectorySeparatorChar}", StringComparison.Ordinal) ? "Release" : "Debug";
        var path = RepositoryRoot.File(Path.Combine("src", "Api", "bin", configuration, "net10.0", "Pipelines.Api.dll"));
        return File.Exists(path) ? path : throw new FileNotFoundException($"build src/Api first ({path})");
    }

    public async ValueTask DisposeAsync()
    {
        await _process.StopAsync(TimeSpan.FromSeconds(30));
        _process.Dispose();
    }

    [GeneratedRegex(@"listening on (?<url>http://\S+)")]
    private static partial Regex Listening();
}
