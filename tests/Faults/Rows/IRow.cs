using Pipelines.Faults.Engine;
using Pipelines.Faults.Report;

namespace Pipelines.Faults.Rows;

/// <summary>One row of the table: a fault (or a hostile input), injected, healed, drained and reconciled.</summary>
internal interface IRow
{
    /// <summary>Short id for <c>--rows</c>.</summary>
    string Id { get; }

    string Title { get; }

    RowKind Kind { get; }

    /// <summary>The bar from issue 7.</summary>
    string Bar { get; }

    /// <summary>Whether the row needs the harness's PostgreSQL and RabbitMQ.</summary>
    bool NeedsCluster => true;

    /// <summary>Whether the row needs the machine's Docker engine with the test image; without it, the row fails saying so.</summary>
    bool NeedsDocker => false;

    Task<RowResult> RunAsync(Cluster cluster, FaultOptions options, CancellationToken cancellationToken);
}
