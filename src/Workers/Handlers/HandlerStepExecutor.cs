using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using Pipelines.Core.Definitions;
using Pipelines.Core.Execution;

namespace Pipelines.Workers.Handlers;

/// <summary>A handler name bound to the code that runs it in this worker.</summary>
public sealed record HandlerRegistration(string Name, Func<IServiceProvider, IStepHandler> Create);

/// <summary>Runs handler steps with the handlers registered in this worker.</summary>
public sealed class HandlerStepExecutor(IEnumerable<HandlerRegistration> registrations, IServiceProvider services) : IStepExecutor
{
    private readonly Dictionary<string, HandlerRegistration> _handlers = registrations.ToDictionary(r => r.Name, StringComparer.Ordinal);

    public IEnumerable<string> HandlerNames => _handlers.Keys;

    public bool CanExecute(StepDefinition definition) => definition?.Handler is { } name && _handlers.ContainsKey(name);

    public async Task<JsonNode?> ExecuteAsync(StepContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        await using var scope = services.CreateAsyncScope();
        return await Resolve(context, scope.ServiceProvider).HandleAsync(context);
    }

    public async Task<bool> CompensateAsync(StepContext context, JsonNode? output)
    {
        ArgumentNullException.ThrowIfNull(context);
        await using var scope = services.CreateAsyncScope();
        if (Resolve(context, scope.ServiceProvider) is not ICompensatingStepHandler compensating
            || compensating is DelegateStepHandler { HasCompensation: false })
        {
            return false;
        }
        await compensating.CompensateAsync(context, output);
        return true;
    }

    private IStepHandler Resolve(StepContext context, IServiceProvider provider) =>
        _handlers[context.Definition.Handler!].Create(provider);
}

/// <summary>A handler written as delegates.</summary>
public sealed class DelegateStepHandler(
    Func<StepContext, Task<JsonNode?>> handle,
    Func<StepContext, JsonNode?, Task>? compensate = null) : ICompensatingStepHandler
{
    public bool HasCompensation => compensate is not null;

    public Task<JsonNode?> HandleAsync(StepContext context) => handle(context);

    public Task CompensateAsync(StepContext context, JsonNode? output) =>
        compensate is null ? Task.CompletedTask : compensate(context, output);
}
