using Pipelines.Faults.Engine;
using Pipelines.Faults.Report;

namespace Pipelines.Faults.Rows;

/// <summary>
/// A minimal reproduction, not a row of the published table (<c>--rows repro-nul</c>): a NUL character
/// in a text query parameter reached PostgreSQL, which refuses it in text, and the API answered 500
/// instead of a 400 naming the parameter. Found by the API fuzzing row; the API now refuses it before
/// any endpoint runs.
/// </summary>
internal sealed class ReproNulInQuery : IRow
{
    public string Id => "repro-nul";

    public string Title => "repro: NUL in a query parameter";

    public RowKind Kind => RowKind.HostileInput;

    public string Bar => "400 naming the parameter, never a 5xx";

    public async Task<RowResult> RunAsync(Cluster cluster, FaultOptions options, CancellationToken cancellationToken)
    {
        await using var deployment = await Deployment.CreateAsync(cluster, "repro-nul", ReproClaimAfterRestart.Definitions);
        await deployment.StartCoordinatorAsync();
        using var api = await ApiEndpoint.StartAsync(deployment);
        string[] paths = ["/api/v1/runs?pipeline=%00", "/api/v1/runs?schedule=%00", "/api/v1/schedules?pipeline=%00", "/api/v1/runs/statistics?pipeline=%00"];
        var answers = new List<(string Path, int Status, bool NamesParameter)>();
        foreach (var path in paths)
        {
            using var response = await api.Admin.GetAsync(path, cancellationToken);
            var parameter = path[(path.IndexOf('?', StringComparison.Ordinal) + 1)..path.IndexOf('=', StringComparison.Ordinal)];
            var body = await response.Content.ReadAsStringAsync(cancellationToken);
            answers.Add((path, (int)response.StatusCode, body.Contains($"\"field\":\"{parameter}\"", StringComparison.Ordinal)));
        }
        return RowResult.Of(this) with
        {
            Passed = answers.All(a => a.Status == 400 && a.NamesParameter),
            Cases = $"{paths.Length} GETs with an admin key",
            Outcome = string.Join("; ", answers.Select(a => $"`{a.Path}` → {a.Status}{(a.NamesParameter ? " naming it" : "")}")),
            Schedule = "An API process on a fresh deployment; each request once.",
        };
    }
}
