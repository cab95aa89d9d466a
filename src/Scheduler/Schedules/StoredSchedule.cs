using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Pipelines.Core.Definitions;
using Quartz;
using OverlapPolicy = Pipelines.Core.Definitions.OverlapPolicy;

namespace Pipelines.Scheduler.Schedules;

/// <summary>Where a schedule was defined; a file reload replaces only <see cref="File"/> schedules.</summary>
public enum ScheduleSource
{
    /// <summary>Declared in the definition file; upserted at start-up, removed when the file drops it.</summary>
    File,
    /// <summary>Created or changed through <see cref="ScheduleService"/> (the API); a file reload leaves it alone.</summary>
    Api,
}

/// <summary>
/// A schedule as it is kept in its Quartz job's data: the definition as written (the cron text, not
/// Quartz's form, so that describing it shows what the user wrote) and where it came from. Whether it
/// is paused is not part of it: that is the trigger's state in Quartz, which every replica reads.
/// </summary>
internal sealed record StoredSchedule
{
    private const string DefinitionKey = "definition";
    private const string SourceKey = "source";
    private const string FileHashKey = "file_hash";

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { Converters = { new JsonStringEnumConverter() } };

    public required string Cron { get; init; }
    public required string Timezone { get; init; }
    public JsonObject? Payload { get; init; }
    public MisfirePolicy Misfire { get; init; }
    public OverlapPolicy Overlap { get; init; }
    public DateTimeOffset? StartAt { get; init; }
    public DateTimeOffset? EndAt { get; init; }

    /// <summary>Hash of the file's definition, enabled flag included, when <see cref="ScheduleSource.File"/>.</summary>
    internal string? FileHash { get; init; }

    internal ScheduleSource Source { get; init; }

    public string QuartzCron => CronSchedule.TryNormalize(Cron, out var quartz, out var error)
        ? quartz
        : throw new InvalidOperationException($"stored cron '{Cron}' is invalid: {error}");

    public TimeZoneInfo Zone => CronSchedule.TryFindTimeZone(Timezone, out var zone, out var error)
        ? zone
        : throw new InvalidOperationException(error);

    public static StoredSchedule From(ScheduleDefinition definition, ScheduleSource source) => new()
    {
        Cron = definition.Cron.Trim(),
        Timezone = definition.Timezone,
        Payload = definition.Payload?.DeepClone().AsObject(),
        Misfire = definition.Misfire,
        Overlap = definition.Overlap,
        StartAt = definition.StartAt,
        EndAt = definition.EndAt,
        Source = source,
        FileHash = source == ScheduleSource.File ? FileHashOf(definition) : null,
    };

    public ScheduleDefinition ToDefinition(string name, bool enabled) => new()
    {
        Name = name,
        Cron = Cron,
        Timezone = Timezone,
        Payload = Payload?.DeepClone().AsObject(),
        Enabled = enabled,
        Misfire = Misfire,
        Overlap = Overlap,
        StartAt = StartAt,
        EndAt = EndAt,
    };

    public JobDataMap ToJobData() => new()
    {
        [DefinitionKey] = JsonSerializer.Serialize(this, Json),
        [SourceKey] = Source.ToString(),
        [FileHashKey] = FileHash ?? "",
    };

    public static StoredSchedule FromJobData(JobDataMap data)
    {
        ArgumentNullException.ThrowIfNull(data);
        var stored = JsonSerializer.Deserialize<StoredSchedule>(Text(data, DefinitionKey), Json)
            ?? throw new InvalidOperationException("a schedule's job has no definition");
        return stored with
        {
            Source = Enum.Parse<ScheduleSource>(Text(data, SourceKey)),
            FileHash = data.TryGetValue(FileHashKey, out var hash) && hash is string { Length: > 0 } text ? text : null,
        };
    }

    private static string Text(JobDataMap data, string key) =>
        data.TryGetValue(key, out var value) && value is string text
            ? text
            : throw new InvalidOperationException($"a schedule's job data has no '{key}'");

    /// <summary>Identifies what the file said, so that start-up rewrites a file schedule only when the file changed it.</summary>
    public static string FileHashOf(ScheduleDefinition definition)
    {
        ArgumentNullException.ThrowIfNull(definition);
        var text = JsonSerializer.Serialize(new
        {
            definition.Cron,
            definition.Timezone,
            Payload = definition.Payload?.ToJsonString(),
            definition.Enabled,
            definition.Misfire,
            definition.Overlap,
            definition.StartAt,
            definition.EndAt,
        }, Json);
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)));
    }
}
