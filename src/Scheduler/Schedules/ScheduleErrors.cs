namespace Pipelines.Scheduler.Schedules;

/// <summary>One thing wrong with a schedule: the field it concerns, as written in YAML and JSON (<c>cron</c>, <c>payload.day</c>), and what is wrong.</summary>
public sealed record ScheduleProblem(string Field, string Message)
{
    public override string ToString() => $"{Field}: {Message}";
}

/// <summary>A schedule was refused; <see cref="Problems"/> lists every reason, each naming its field.</summary>
public sealed class InvalidScheduleException(ScheduleKey key, IReadOnlyList<ScheduleProblem> problems)
    : Exception($"schedule '{key}' is invalid: {string.Join("; ", problems)}")
{
    public ScheduleKey Key { get; } = key;

    public IReadOnlyList<ScheduleProblem> Problems { get; } = problems;
}

public sealed class ScheduleNotFoundException(ScheduleKey key)
    : Exception($"no schedule '{key.Name}' for pipeline '{key.Pipeline}'")
{
    public ScheduleKey Key { get; } = key;
}

public sealed class ScheduleAlreadyExistsException(ScheduleKey key)
    : Exception($"pipeline '{key.Pipeline}' already has a schedule named '{key.Name}'; update it instead")
{
    public ScheduleKey Key { get; } = key;
}
