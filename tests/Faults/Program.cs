using Pipelines.Faults;
using Pipelines.Faults.Engine;

// Signals, runuser, initdb and rabbitmq-server: the harness drives a Linux machine.
[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]

if (args is ["scheduler-replica", ..])
{
    // A child process of the scheduler rows: one replica of the scheduler role.
    return await SchedulerReplica.RunAsync();
}
if (args is ["--help" or "-h", ..])
{
    Console.WriteLine(FaultOptions.Usage);
    return 0;
}

FaultOptions options;
try
{
    options = FaultOptions.Parse(args);
}
catch (Exception e) when (e is ArgumentException or FormatException)
{
    Console.Error.WriteLine($"faults: {e.Message}\n{FaultOptions.Usage}");
    return 2;
}

using var stop = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) =>
{
    // Stop the rows, then still stop the harness's broker, database and workers.
    e.Cancel = true;
    stop.Cancel();
};
return await FaultSuite.RunAsync(options, Console.Out, Console.Error, stop.Token);
