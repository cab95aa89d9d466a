using System.Globalization;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Net.ServerSentEvents;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Pipelines.Core.Runs;

namespace Pipelines.Client;

/// <summary>
/// The Pipelines HTTP API for application code. Give it an <see cref="HttpClient"/> whose
/// <see cref="HttpClient.BaseAddress"/> is the API's root (e.g. <c>http://localhost:5080/</c>) and
/// whose default <c>Authorization</c> header carries the API key, or use <see cref="Create"/>; with
/// <c>IHttpClientFactory</c> register it as a typed client. Every error the API answers becomes a
/// <see cref="PipelinesApiException"/> with the problem details, each problem naming its field.
/// </summary>
public sealed class PipelinesClient(HttpClient http)
{
    private const string Root = "api/v1";

    private static readonly JsonSerializerOptions Json = PipelinesJson.Options;

    /// <summary>A client of the API at <paramref name="baseAddress"/>, sending <paramref name="apiKey"/> as a bearer token when given.</summary>
    public static PipelinesClient Create(Uri baseAddress, string? apiKey = null, HttpMessageHandler? handler = null)
    {
        var http = handler is null ? new HttpClient() : new HttpClient(handler);
        http.BaseAddress = baseAddress;
        if (apiKey is not null)
        {
            http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", apiKey);
        }
        return new PipelinesClient(http);
    }

    /// <summary>
    /// Starts a run of <paramref name="pipeline"/>. <paramref name="payload"/> is a <see cref="JsonObject"/>
    /// or any object that serializes to one (an anonymous object, a record). With an
    /// <paramref name="idempotencyKey"/> seen before, no second run starts: the result is the first
    /// run, with <see cref="RunStarted.Created"/> false — so a start can be repeated safely after a
    /// timeout or a 503.
    /// </summary>
    public Task<RunStarted> StartRunAsync(string pipeline, object? payload = null, string? idempotencyKey = null, CancellationToken cancellationToken = default) =>
        PostAsync<RunStarted>($"{Root}/runs", new StartRunRequest { Pipeline = pipeline, Payload = Payloads.ToObject(payload) }, idempotencyKey, cancellationToken);

    public Task<Run> GetRunAsync(Guid runId, CancellationToken cancellationToken = default) =>
        GetAsync<Run>($"{Root}/runs/{runId}", cancellationToken);

    /// <summary>One page of runs, newest first; pass <see cref="RunList.NextCursor"/> as <see cref="RunQuery.Cursor"/> for the next.</summary>
    public Task<RunList> ListRunsAsync(RunQuery? query = null, CancellationToken cancellationToken = default)
    {
        query ??= new RunQuery();
        var parameters = new List<(string, string?)>
        {
            ("pipeline", query.Pipeline),
            ("from", query.From?.ToString("O", CultureInfo.InvariantCulture)),
            ("to", query.To?.ToString("O", CultureInfo.InvariantCulture)),
            ("schedule", query.Schedule),
            ("limit", query.Limit?.ToString(CultureInfo.InvariantCulture)),
            ("cursor", query.Cursor),
        };
        parameters.AddRange(query.States.Select(s => ("state", (string?)JsonNamingPolicy.SnakeCaseLower.ConvertName(s.ToString()))));
        return GetAsync<RunList>($"{Root}/runs{QueryString(parameters)}", cancellationToken);
    }

    /// <summary>
    /// Polls the run until it is succeeded, failed or cancelled, and returns it. Bound the wait with
    /// <paramref name="cancellationToken"/>.
    /// </summary>
    public async Task<Run> WaitForRunAsync(Guid runId, TimeSpan? pollInterval = null, CancellationToken cancellationToken = default)
    {
        var interval = pollInterval ?? TimeSpan.FromMilliseconds(500);
        while (true)
        {
            var run = await GetRunAsync(runId, cancellationToken);
            if (run.State.IsTerminal())
            {
                return run;
            }
            await Task.Delay(interval, cancellationToken);
        }
    }

    /// <summary>Asks for the run to be cancelled: pending steps never start, running ones are stopped. Returns the run as it was when asked.</summary>
    public Task<RunSummary> CancelRunAsync(Guid runId, CancellationToken cancellationToken = default) =>
        PostAsync<RunSummary>($"{Root}/runs/{runId}/cancel", null, cancellationToken);

    /// <summary>
    /// Starts a new run that retries a failed or cancelled one from its failed step: steps that
    /// succeeded keep their outputs. <paramref name="payload"/> replaces the original payload when given.
    /// With an <paramref name="idempotencyKey"/> seen before, no second retry starts: the result is
    /// the run that key started, with <see cref="RunStarted.Created"/> false.
    /// </summary>
    public Task<RunStarted> RetryRunAsync(Guid runId, object? payload = null, string? idempotencyKey = null, CancellationToken cancellationToken = default) =>
        PostAsync<RunStarted>($"{Root}/runs/{runId}/retry", new RetryRunRequest { Payload = Payloads.ToObject(payload) }, idempotencyKey, cancellationToken);

    /// <summary>The log of a step attempt so far, as text, one line per log line.</summary>
    public async Task<string> GetLogAsync(Guid runId, string step, int attempt, CancellationToken cancellationToken = default)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, LogPath(runId, step, attempt));
        using var response = await http.SendAsync(request, cancellationToken);
        await ThrowIfFailedAsync(response, cancellationToken);
        return await response.Content.ReadAsStringAsync(cancellationToken);
    }

    /// <summary>
    /// The lines of a step attempt's log as they are written, from the first, until the attempt
    /// finishes (server-sent events). A dropped connection is resumed after the last line received.
    /// </summary>
    public async IAsyncEnumerable<LogLine> FollowLogAsync(Guid runId, string step, int attempt, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        long after = 0;
        for (var reconnects = 0; ; reconnects++)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, $"{LogPath(runId, step, attempt)}?follow=true&after={after}");
            request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("text/event-stream"));
            using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
            await ThrowIfFailedAsync(response, cancellationToken);
            await using var stream = await response.Content.ReadAsStreamAsync(cancellationToken);
            var events = SseParser.Create(stream, (type, data) => type switch
            {
                "log" => (object?)JsonSerializer.Deserialize<LogLine>(data, Json),
                "end" => JsonSerializer.Deserialize<LogEnd>(data, Json),
                _ => null,
            }).EnumerateAsync(cancellationToken);
            var enumerator = events.GetAsyncEnumerator(cancellationToken);
            try
            {
                while (true)
                {
                    bool more;
                    try
                    {
                        more = await enumerator.MoveNextAsync();
                    }
                    catch (Exception exception) when (exception is IOException or HttpRequestException && reconnects < 5)
                    {
                        break; // reconnect after the last line received
                    }
                    if (!more || enumerator.Current.Data is LogEnd)
                    {
                        yield break;
                    }
                    if (enumerator.Current.Data is LogLine line)
                    {
                        after = line.Id;
                        yield return line;
                    }
                }
            }
            finally
            {
                await enumerator.DisposeAsync();
            }
        }
    }

    /// <summary>Counts by state and duration percentiles of runs created in [<paramref name="from"/>, <paramref name="to"/>), per pipeline.</summary>
    public Task<RunStatistics> GetStatisticsAsync(string? pipeline = null, DateTimeOffset? from = null, DateTimeOffset? to = null, CancellationToken cancellationToken = default) =>
        GetAsync<RunStatistics>($"{Root}/runs/statistics" + QueryString(
            ("pipeline", pipeline),
            ("from", from?.ToString("O", CultureInfo.InvariantCulture)),
            ("to", to?.ToString("O", CultureInfo.InvariantCulture))), cancellationToken);

    public async Task<IReadOnlyList<PipelineSummary>> ListPipelinesAsync(CancellationToken cancellationToken = default) =>
        (await GetAsync<PipelineList>($"{Root}/pipelines", cancellationToken)).Items;

    public Task<Pipeline> GetPipelineAsync(string name, CancellationToken cancellationToken = default) =>
        GetAsync<Pipeline>($"{Root}/pipelines/{Uri.EscapeDataString(name)}", cancellationToken);

    /// <summary>Checks a definition file's text without storing it; an invalid one throws with every error and its line and column.</summary>
    public async Task<DefinitionValidation> ValidateDefinitionAsync(string definition, CancellationToken cancellationToken = default)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, $"{Root}/pipelines/validate")
        {
            Content = new StringContent(definition, Encoding.UTF8, "application/yaml"),
        };
        return await SendAsync<DefinitionValidation>(request, cancellationToken);
    }

    /// <summary>
    /// One page of the schedules (all, or those of <paramref name="pipeline"/>), ordered by pipeline and
    /// name, each with its next <paramref name="nextFireTimes"/> fire times; at most <paramref name="limit"/>
    /// (the API's default page size when null). Pass <see cref="ScheduleList.NextCursor"/> as
    /// <paramref name="cursor"/> for the next page.
    /// </summary>
    public Task<ScheduleList> ListSchedulesAsync(
        string? pipeline = null, int? nextFireTimes = null, int? limit = null, string? cursor = null, CancellationToken cancellationToken = default) =>
        GetAsync<ScheduleList>($"{Root}/schedules" + QueryString(
            ("pipeline", pipeline),
            ("next", nextFireTimes?.ToString(CultureInfo.InvariantCulture)),
            ("limit", limit?.ToString(CultureInfo.InvariantCulture)),
            ("cursor", cursor)), cancellationToken);

    public Task<Schedule> GetScheduleAsync(string pipeline, string name, CancellationToken cancellationToken = default) =>
        GetAsync<Schedule>(SchedulePath(pipeline, name), cancellationToken);

    /// <summary>Creates a schedule; it takes effect on the running schedulers without a restart.</summary>
    public Task<Schedule> CreateScheduleAsync(ScheduleSpec schedule, CancellationToken cancellationToken = default) =>
        PostAsync<Schedule>($"{Root}/schedules", schedule, cancellationToken);

    /// <summary>Replaces a schedule's definition, <c>enabled</c> included.</summary>
    public async Task<Schedule> UpdateScheduleAsync(string pipeline, string name, ScheduleSpec schedule, CancellationToken cancellationToken = default)
    {
        using var request = new HttpRequestMessage(HttpMethod.Put, SchedulePath(pipeline, name)) { Content = JsonContent.Create(schedule, options: Json) };
        return await SendAsync<Schedule>(request, cancellationToken);
    }

    public async Task DeleteScheduleAsync(string pipeline, string name, CancellationToken cancellationToken = default)
    {
        using var request = new HttpRequestMessage(HttpMethod.Delete, SchedulePath(pipeline, name));
        using var response = await http.SendAsync(request, cancellationToken);
        await ThrowIfFailedAsync(response, cancellationToken);
    }

    public Task<Schedule> PauseScheduleAsync(string pipeline, string name, CancellationToken cancellationToken = default) =>
        PostAsync<Schedule>($"{SchedulePath(pipeline, name)}/pause", null, cancellationToken);

    public Task<Schedule> ResumeScheduleAsync(string pipeline, string name, CancellationToken cancellationToken = default) =>
        PostAsync<Schedule>($"{SchedulePath(pipeline, name)}/resume", null, cancellationToken);

    private static string LogPath(Guid runId, string step, int attempt) =>
        $"{Root}/runs/{runId}/steps/{Uri.EscapeDataString(step)}/attempts/{attempt.ToString(CultureInfo.InvariantCulture)}/log";

    private static string SchedulePath(string pipeline, string name) =>
        $"{Root}/schedules/{Uri.EscapeDataString(pipeline)}/{Uri.EscapeDataString(name)}";

    private static string QueryString(params IEnumerable<(string Name, string? Value)> parameters)
    {
        var given = parameters.Where(p => p.Value is not null).Select(p => $"{p.Name}={Uri.EscapeDataString(p.Value!)}").ToList();
        return given.Count == 0 ? "" : "?" + string.Join('&', given);
    }

    private async Task<T> GetAsync<T>(string path, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        return await SendAsync<T>(request, cancellationToken);
    }

    private Task<T> PostAsync<T>(string path, object? body, CancellationToken cancellationToken) =>
        PostAsync<T>(path, body, idempotencyKey: null, cancellationToken);

    private async Task<T> PostAsync<T>(string path, object? body, string? idempotencyKey, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, path)
        {
            Content = body is null ? null : JsonContent.Create(body, body.GetType(), options: Json),
        };
        if (idempotencyKey is not null)
        {
            request.Headers.Add("Idempotency-Key", idempotencyKey);
        }
        return await SendAsync<T>(request, cancellationToken);
    }

    private async Task<T> SendAsync<T>(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        using var response = await http.SendAsync(request, cancellationToken);
        await ThrowIfFailedAsync(response, cancellationToken);
        return await response.Content.ReadFromJsonAsync<T>(Json, cancellationToken)
            ?? throw new PipelinesApiException(response.StatusCode, null);
    }

    private static async Task ThrowIfFailedAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        if (response.IsSuccessStatusCode)
        {
            return;
        }
        ApiProblem? problem = null;
        if (response.Content.Headers.ContentType?.MediaType is "application/problem+json" or "application/json")
        {
            try
            {
                problem = await response.Content.ReadFromJsonAsync<ApiProblem>(Json, cancellationToken);
            }
            catch (JsonException)
            {
            }
        }
        var retryAfter = response.Headers.RetryAfter switch
        {
            { Delta: { } delta } => delta,
            { Date: { } date } => date - DateTimeOffset.UtcNow,
            _ => (TimeSpan?)null,
        };
        throw new PipelinesApiException(response.StatusCode, problem) { RetryAfter = retryAfter };
    }
}
