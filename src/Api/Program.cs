using Pipelines.Api.Hosting;

// `dotnet run --project src/Api` from the repository root: API, coordinator, worker (handlers and
// containers) and scheduler in one process, on the in-memory bus and data/pipelines.db, on
// http://localhost:5080. Pipelines:Roles, Pipelines:Transport and Pipelines:Database pick a role of a
// distributed deployment instead (docs/api.md).
var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args, ContentRootPath = AppContext.BaseDirectory });
builder.AddPipelinesRoles();
builder.AddPipelinesApi();

var app = builder.Build();
app.UsePipelinesApi();
app.MapPipelinesEndpoints();
return await app.RunPipelinesAsync();
