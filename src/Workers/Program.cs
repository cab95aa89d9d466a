using Microsoft.Extensions.Hosting;
using Pipelines.Core.Hosting;
using Pipelines.Workers.Demo;
using Pipelines.Workers.Hosting;

// A worker process: `dotnet run --project src/Workers`. Settings from appsettings.json or the
// environment, e.g. Pipelines__Transport=RabbitMq, Pipelines__Database__Provider=PostgreSql.
var builder = Host.CreateApplicationBuilder(args);
builder.Services.AddPipelines(builder.Configuration)
    .AddWorker()
    .AddContainersWhenAvailable(builder.Configuration)
    .AddDemoHandlers();
await builder.Build().RunAsync();
