using System.Globalization;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Pipelines.Core.Hosting;
using Pipelines.Scheduler.Hosting;
using Quartz;

namespace Pipelines.Faults.Engine;

/// <summary>
/// The child process of the scheduler rows (<c>pipelines-faults scheduler-replica</c>): one replica of
/// the scheduler role, configured like any Pipelines process from <c>Pipelines__*</c> variables, until
/// it is killed. It prints each scheduler event (ids 5000-5099) as
/// <c>EVENT ID SCHEDULE TIME RUN</c> for the harness to read; other warnings as <c>LOG ...</c>; and
/// <c>READY INSTANCE_ID</c> once its scheduler has started.
/// </summary>
internal static class SchedulerReplica
{
    public static async Task<int> RunAsync()
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Configuration.AddEnvironmentVariables();
        builder.Logging.ClearProviders()
            .SetMinimumLevel(LogLevel.Warning)
            .AddFilter("Pipelines", LogLevel.Debug)
            .AddProvider(new EventLines());
        builder.Services.AddPipelines(builder.Configuration).AddPipelinesScheduler();
        using var host = builder.Build();
        await host.StartAsync();
        // Quartz's hosted service may start the scheduler after the host reports started.
        var scheduler = await host.Services.GetRequiredService<ISchedulerFactory>().GetScheduler();
        while (scheduler.Status != SchedulerStatus.Running)
        {
            await Task.Delay(TimeSpan.FromMilliseconds(100));
        }
        EventLines.Write($"{ReplicaProcess.ReadyLine} {scheduler.SchedulerInstanceId}");
        await host.WaitForShutdownAsync();
        return 0;
    }

    private sealed class EventLines : ILoggerProvider
    {
        private static readonly Lock Gate = new();

        public ILogger CreateLogger(string categoryName) => new Logger(categoryName);

        public static void Write(string line)
        {
            lock (Gate)
            {
                Console.Out.WriteLine(line);
                Console.Out.Flush();
            }
        }

        public void Dispose()
        {
        }

        private sealed class Logger(string category) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
            {
                string line;
                if (eventId.Id is >= 5000 and < 5100 && state is IReadOnlyList<KeyValuePair<string, object?>> fields)
                {
                    string Field(string name) => fields.FirstOrDefault(f => f.Key == name).Value switch
                    {
                        DateTimeOffset time => time.UtcDateTime.ToString("O", CultureInfo.InvariantCulture),
                        null => "-",
                        var value => Convert.ToString(value, CultureInfo.InvariantCulture) ?? "-",
                    };
                    var time = fields.Any(f => f.Key == "FireTime") ? Field("FireTime") : Field("DueTime");
                    line = $"EVENT {eventId.Id} {Field("Schedule")} {time} {Field("RunId")}";
                }
                else if (logLevel >= LogLevel.Warning)
                {
                    line = $"LOG {logLevel} {category} {formatter(state, exception)} {exception?.GetType().Name} {exception?.Message}";
                }
                else
                {
                    return;
                }
                Write(line);
            }
        }
    }
}
