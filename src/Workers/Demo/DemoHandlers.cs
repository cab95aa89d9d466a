using System.Globalization;
using System.Text.Json.Nodes;
using Pipelines.Core.Execution;
using Pipelines.Core.Hosting;
using Pipelines.Workers.Hosting;

namespace Pipelines.Workers.Demo;

/// <summary>
/// The handlers of the example pipelines in <c>config/pipelines.yaml</c>, so that a fresh clone
/// runs them with no server, plus small utility handlers that tests and the benchmark use.
/// </summary>
public static class DemoHandlers
{
    /// <summary>
    /// When set (a folder), every demo handler execution appends <c>RUN STEP ATTEMPT</c> to a file
    /// of this process in it: a side-effect ledger that tests and the fault suite reconcile against
    /// the run store. One file per process, because appends from two processes to one file can interleave.
    /// </summary>
    public const string LedgerVariable = "PIPELINES_LEDGER";

    private static readonly Lock LedgerLock = new();

    public static PipelinesBuilder AddDemoHandlers(this PipelinesBuilder builder)
    {
        var ledger = Environment.GetEnvironmentVariable(LedgerVariable) is { Length: > 0 } folder
            ? Path.Combine(folder, $"{Environment.ProcessId}.ledger")
            : null;
        PipelinesBuilder Add(string name, Func<StepContext, Task<JsonNode?>> handle) =>
            builder.AddHandler(name, ledger is null ? handle : context =>
            {
                lock (LedgerLock)
                {
                    File.AppendAllText(ledger, $"{context.RunId} {context.Step} {context.Attempt}\n");
                }
                return handle(context);
            });

        Add("demo.fetch-orders", FetchOrdersAsync);
        Add("demo.price-orders", PriceOrders);
        Add("demo.load-customers", LoadCustomers);
        Add("demo.build-report", BuildReport);
        Add("demo.publish", PublishAsync);
        Add("demo.summarise", Summarise);
        Add("demo.echo", context => Task.FromResult<JsonNode?>(context.Event.DeepClone()));
        Add("demo.sleep", SleepAsync);
        return Add("demo.fail", context => throw new InvalidOperationException(
            context.Event["message"]?.GetValue<string>() ?? $"demo.fail failed on attempt {context.Attempt}"));
    }

    private static async Task<JsonNode?> FetchOrdersAsync(StepContext context)
    {
        var day = context.Event["day"]?.GetValue<string>() ?? "2026-01-01";
        var count = context.Event["orders"]?.GetValue<int>() ?? 25;
        var random = new Random(day.GetHashCode(StringComparison.Ordinal));
        var orders = new JsonArray();
        for (var i = 1; i <= count; i++)
        {
            orders.Add(new JsonObject { ["id"] = $"{day}-{i:D4}", ["customer"] = $"c{random.Next(1, 1 + Math.Max(1, count / 3))}", ["amount"] = Math.Round(random.NextDouble() * 200, 2) });
        }
        context.Log.Write("stdout", $"fetched {count} orders for {day}");
        await Task.Delay(TimeSpan.FromMilliseconds(50), context.CancellationToken);
        return new JsonObject { ["day"] = day, ["orders"] = orders };
    }

    private static Task<JsonNode?> PriceOrders(StepContext context)
    {
        var orders = context.Inputs["fetch-orders"]!["orders"]!.AsArray();
        var total = orders.Sum(o => o!["amount"]!.GetValue<double>());
        var currency = context.Event["currency"]?.GetValue<string>() ?? "EUR";
        context.Log.Write("stdout", $"priced {orders.Count} orders");
        return Task.FromResult<JsonNode?>(new JsonObject { ["total"] = Math.Round(total, 2), ["currency"] = currency, ["count"] = orders.Count });
    }

    private static Task<JsonNode?> LoadCustomers(StepContext context)
    {
        var orders = context.Inputs["fetch-orders"]!["orders"]!.AsArray();
        var customers = orders.Select(o => o!["customer"]!.GetValue<string>()).Distinct(StringComparer.Ordinal).Count();
        return Task.FromResult<JsonNode?>(new JsonObject { ["customers"] = customers });
    }

    private static Task<JsonNode?> BuildReport(StepContext context)
    {
        var priced = context.Inputs["price-orders"]!;
        var customers = context.Inputs["load-customers"]!["customers"]!.GetValue<int>();
        var report = string.Create(CultureInfo.InvariantCulture,
            $"{priced["count"]} orders from {customers} customers, {priced["total"]} {priced["currency"]}");
        context.Log.Write("stdout", report);
        return Task.FromResult<JsonNode?>(new JsonObject { ["report"] = report });
    }

    private static Task<JsonNode?> PublishAsync(StepContext context)
    {
        context.Log.Write("stdout", $"published: {context.Inputs["build-report"]!["report"]}");
        return Task.FromResult<JsonNode?>(new JsonObject { ["published"] = true });
    }

    private static Task<JsonNode?> Summarise(StepContext context)
    {
        var count = context.Inputs["count"]?["count"]?.ToString().Trim() ?? "0";
        return Task.FromResult<JsonNode?>(new JsonObject { ["words"] = int.Parse(count, CultureInfo.InvariantCulture) });
    }

    /// <summary>Sleeps <c>sleep_ms</c> of the event (default 100), honouring cancellation.</summary>
    private static async Task<JsonNode?> SleepAsync(StepContext context)
    {
        var milliseconds = context.Event["sleep_ms"]?.GetValue<int>() ?? 100;
        await Task.Delay(milliseconds, context.CancellationToken);
        return new JsonObject { ["slept_ms"] = milliseconds, ["attempt"] = context.Attempt };
    }
}
