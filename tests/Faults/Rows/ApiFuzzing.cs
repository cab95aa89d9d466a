using System.Collections.Concurrent;
using System.Globalization;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using CsCheck;
using Pipelines.Faults.Engine;
using Pipelines.Faults.Hostile;
using Pipelines.Faults.Report;

namespace Pipelines.Faults.Rows;

/// <summary>
/// Hostile input: requests generated with CsCheck from the API's own OpenAPI document, sent to an API
/// process of a running deployment: every operation, with valid and wrong values, oversize and deep
/// JSON, odd unicode, broken bodies, and missing, unknown, malformed or wrong-scope keys; then a burst
/// on a key limited to 60 requests a minute. No answer may be a 5xx, none may let an unauthorised
/// request through, a request without a valid key must be told 401 and one without the scope 403
/// whatever else is wrong with it, and the burst must meet 429s. Two answers are not the API's to
/// give: the HTTP server's own refusal of a request it cannot parse (a NUL or a line break in a
/// header, a URL or headers too long: 400, 414, 431 without problem details, before any middleware
/// runs), and a 404 for a path no endpoint has, to a valid key.
/// </summary>
internal sealed class ApiFuzzing : IRow
{
    private const string Definitions = """
        pipelines:
          fuzz:
            parameters:
              day: { type: string, default: "2026-01-01" }
              count: { type: integer, default: 1 }
            steps:
              - { name: first, handler: demo.echo }
              - { name: second, handler: demo.echo, depends_on: [first] }
            schedules:
              - { name: nightly, cron: "0 2 * * *", timezone: Europe/Berlin }
          failing:
            steps:
              - { name: boom, handler: demo.fail }
        """;

    public string Id => "api-fuzz";

    public string Title => "API requests generated from the OpenAPI document";

    public RowKind Kind => RowKind.HostileInput;

    public string Bar => "0 responses 5xx; 0 auth bypasses; no key → 401, wrong scope → 403, before anything else; 429 under burst";

    // Problem: the answer is problem details, so the API wrote it, not the HTTP server.
    // NoEndpoint: a 404 naming `path`: no endpoint has this path.
    private sealed record Answer(FuzzRequest Request, int Status, bool StackTrace, bool Problem, bool NoEndpoint)
    {
        public bool RefusedByServer => !Problem && Status is 400 or 414 or 431;
    }

    public async Task<RowResult> RunAsync(Cluster cluster, FaultOptions options, CancellationToken cancellationToken)
    {
        var requests = options.Pick(10_000, 2_000);
        await using var deployment = await Deployment.CreateAsync(cluster, "api-fuzz", Definitions);
        await deployment.StartCoordinatorAsync();
        deployment.StartWorker("worker-1");
        using var api = await ApiEndpoint.StartAsync(deployment);
        using var anonymous = api.Client(null);
        var document = (await anonymous.GetFromJsonAsync<JsonObject>("/openapi/v1.json", cancellationToken))!;

        // Real runs to aim at: succeeded and failed ones, with steps and attempts.
        var runs = new List<Guid>();
        foreach (var pipeline in new[] { "fuzz", "fuzz", "failing" })
        {
            runs.Add(await api.Starter(pipeline, () => null)($"seed-{Guid.NewGuid():N}", cancellationToken));
        }
        var targets = new FuzzTargets(
            new Dictionary<string, string> { ["runs:read"] = api.Keys["reader"], ["runs:write"] = api.Keys["writer"], ["schedules:write"] = api.Keys["scheduler"], ["admin"] = api.Keys["admin"] },
            ["fuzz", "failing"], runs, ["first", "second", "boom"], ["fuzz/nightly"],
            [.. DefinitionCorpus.Generate(options.Seed).Where(d => d.Content.Length < 200_000).Select(d => d.Content).Take(60)]);
        var generator = OpenApiRequests.Create(document, targets);
        var operations = document["paths"]!.AsObject().Sum(p => p.Value!.AsObject().Count);

        // Header values go out as UTF-8 bytes, so odd unicode reaches the server instead of being refused here.
        using var handler = new SocketsHttpHandler { MaxConnectionsPerServer = 16, RequestHeaderEncodingSelector = (_, _) => System.Text.Encoding.UTF8 };
        using var http = new HttpClient(handler) { BaseAddress = new Uri(api.Url), Timeout = TimeSpan.FromSeconds(60) };
        var answers = new ConcurrentBag<Answer>();
        var transport = new ConcurrentBag<string>();
        cluster.Say($"api-fuzz: {requests} requests over {operations} operations");
        await Check.SampleAsync(generator, async request =>
        {
            try
            {
                answers.Add(await SendAsync(http, request, cancellationToken));
            }
            catch (HttpRequestException e)
            {
                transport.Add($"{request}: {e.Message}");
            }
            catch (TaskCanceledException e) when (!cancellationToken.IsCancellationRequested)
            {
                transport.Add($"{request}: no answer ({e.Message})");
            }
        }, iter: requests, threads: 4);

        var all = answers.ToList();
        var serverErrors = all.Where(a => a.Status >= 500).ToList();
        bool Unauthenticated(Answer a) => a.Request.Credential is Credential.None or Credential.UnknownKey or Credential.Garbage;
        var bypasses = all.Where(a => a.Status is >= 200 and < 300 && (Unauthenticated(a) || a.Request.Credential == Credential.WrongScope)).ToList();
        var unauthenticatedOther = all.Where(a => Unauthenticated(a) && a.Status != 401 && !a.RefusedByServer).ToList();
        var wrongScopeOther = all.Where(a => a.Request.Credential == Credential.WrongScope && a.Status != 403 && !a.RefusedByServer && !a.NoEndpoint).ToList();
        static string Count(IEnumerable<Answer> answers) =>
            answers.Any() ? string.Join(", ", answers.GroupBy(a => a.Status).OrderBy(g => g.Key).Select(g => $"{g.Key} ×{g.Count()}")) : "none";
        var refusedByServer = all.Where(a => a.RefusedByServer).ToList();
        var traces = all.Count(a => a.StackTrace);
        var statuses = string.Join(", ", all.GroupBy(a => a.Status).OrderBy(g => g.Key).Select(g => $"{g.Key} ×{g.Count()}"));
        var mutations = string.Join(", ", all.GroupBy(a => a.Request.Mutation.Split('+')[0]).OrderByDescending(g => g.Count()).Take(12).Select(g => $"{g.Key} {g.Count()}"));

        // The burst: a key allowed 60 requests a minute, 150 requests at once.
        using var limited = api.Client("limited");
        var burst = await Task.WhenAll(Enumerable.Range(0, 150).Select(async _ =>
        {
            using var response = await limited.GetAsync("/api/v1/pipelines", cancellationToken);
            return (Status: (int)response.StatusCode, RetryAfter: response.Headers.RetryAfter is not null);
        }));
        var tooMany = burst.Count(b => b.Status == 429);
        var withRetryAfter = burst.Count(b => b.Status == 429 && b.RetryAfter);
        using var ready = await anonymous.GetAsync("/readyz", cancellationToken);

        return RowResult.Of(this) with
        {
            Passed = serverErrors.Count == 0 && bypasses.Count == 0 && unauthenticatedOther.Count == 0 && wrongScopeOther.Count == 0 && tooMany > 0 && withRetryAfter == tooMany && transport.IsEmpty && traces == 0 && !api.Process.HasExited,
            Cases = string.Create(CultureInfo.InvariantCulture, $"{all.Count + transport.Count:N0} requests over {operations} operations, then a burst of 150"),
            Outcome = string.Create(CultureInfo.InvariantCulture,
                $"{serverErrors.Count} 5xx; {bypasses.Count} auth bypasses; {unauthenticatedOther.Count} requests without a valid key not answered 401, {wrongScopeOther.Count} without the scope not answered 403; {traces} stack traces in answers; burst: {tooMany} × 429 (all with Retry-After: {withRetryAfter == tooMany}), {burst.Count(b => b.Status == 200)} × 200; {transport.Count} requests without an answer"),
            Schedule = $"An API process (`Pipelines__Roles=api`, keys for each scope plus one limited to 60 requests a minute) on a deployment with a coordinator and a worker; {runs.Count} runs started first so ids, steps and attempts exist. Requests come from CsCheck generators built from `/openapi/v1.json`: each operation's path, query and header parameters and body schema, filled with valid values and real names, or mutated; credentials: 60% a key with the needed scope, 10% each a key without it, none, an unknown key, a malformed header. 4 requests at a time.",
            Notes =
            [
                $"answers: {statuses}",
                $"requests by what was made wrong: {mutations}",
                $"unauthenticated requests not answered 401: {Count(unauthenticatedOther)}; wrong-scope requests not answered 403: {Count(wrongScopeOther)} (besides 404 for a path no endpoint has: {all.Count(a => a.Request.Credential == Credential.WrongScope && a.NoEndpoint)})",
                $"refused by the HTTP server before the API saw them (no problem details): {Count(refusedByServer)}",
                $"after the run the API answered /readyz {(int)ready.StatusCode} and was {(api.Process.HasExited ? "**gone**" : "still up")}.",
                .. unauthenticatedOther.Concat(wrongScopeOther).DistinctBy(a => (a.Status, a.Request.Operation)).Take(8)
                    .Select(a => $"**answered {a.Status}** to a request with {a.Request.Credential} credentials: {a.Request}"),
                .. serverErrors.Take(8).Select(a => $"**{a.Status}**: {a.Request}"),
                .. bypasses.Take(8).Select(a => $"**bypass** {a.Status}: {a.Request}"),
                .. transport.Take(5).Select(t => $"**no answer**: {t}"),
            ],
        };
    }

    private static async Task<Answer> SendAsync(HttpClient http, FuzzRequest request, CancellationToken cancellationToken)
    {
        using var message = new HttpRequestMessage(new HttpMethod(request.Method), request.Path + (request.Query.Length > 0 ? "?" + request.Query : ""));
        if (request.Authorization is not null)
        {
            message.Headers.TryAddWithoutValidation("Authorization", request.Authorization);
        }
        if (request.Key is not null)
        {
            message.Headers.TryAddWithoutValidation(request.Path.StartsWith("/api/v1/runs/", StringComparison.Ordinal) ? "Last-Event-ID" : "Idempotency-Key", request.Key);
        }
        if (request.Body is not null)
        {
            message.Content = new ByteArrayContent(request.Body);
            // As docs/api.md advises for large bodies: a refused one is then never sent, and the connection stays usable.
            message.Headers.ExpectContinue = request.Body.Length > 64 * 1024;
            if (request.ContentType is not null)
            {
                message.Content.Headers.ContentType = MediaTypeHeaderValue.Parse(request.ContentType);
            }
        }
        // A followed log streams until its attempt ends: read the head of any answer only.
        using var response = await http.SendAsync(message, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
        var body = await ReadHeadAsync(response, cancellationToken);
        var stackTrace = body.Contains("   at ", StringComparison.Ordinal) && body.Contains("Exception", StringComparison.Ordinal);
        var problem = response.Content.Headers.ContentType?.MediaType == "application/problem+json";
        var noEndpoint = response.StatusCode == System.Net.HttpStatusCode.NotFound && problem && body.Contains("\"field\":\"path\"", StringComparison.Ordinal);
        return new Answer(request, (int)response.StatusCode, stackTrace, problem, noEndpoint);
    }

    private static async Task<string> ReadHeadAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        await using var stream = await response.Content.ReadAsStreamAsync(cancellationToken);
        var buffer = new byte[64 * 1024];
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(2));
        var read = 0;
        try
        {
            int n;
            while (read < buffer.Length && (n = await stream.ReadAsync(buffer.AsMemory(read), timeout.Token)) > 0)
            {
                read += n;
            }
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            // A stream that stays open (server-sent events): what arrived is enough.
        }
        return System.Text.Encoding.UTF8.GetString(buffer, 0, read);
    }
}
