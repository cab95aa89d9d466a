using System.Globalization;

namespace Pipelines.Faults;

/// <summary>
/// The command line: <c>--short</c> (the CI run, a few minutes) or <c>--full</c> (the durations of
/// issue 7, about 30 minutes), <c>--seed</c>, <c>--rows</c>, <c>--out</c>, and the ports of the
/// harness's own services.
/// </summary>
internal sealed record FaultOptions
{
    /// <summary>Workers' lease (default 30 s): shortened so that a killed worker's steps are taken over within the rows' time.</summary>
    public static readonly TimeSpan LeaseDuration = TimeSpan.FromSeconds(5);

    public bool Full { get; init; }

    public int Seed { get; init; } = 20261123;

    /// <summary>Row ids to run (prefix match); empty runs them all.</summary>
    public IReadOnlyList<string> Rows { get; init; } = [];

    /// <summary>
    /// Rows whose bar is known to be missed (a finding in docs/reliability.md not fixed yet): still run
    /// and reported as missed, but they do not fail the exit code, so CI stays red for new misses only.
    /// </summary>
    public IReadOnlyList<string> KnownMissed { get; init; } = [];

    /// <summary>Also write the report (markdown) here.</summary>
    public string? Output { get; init; }

    /// <summary>Keep the temporary folder (logs, ledgers, definitions) instead of deleting it.</summary>
    public bool Keep { get; init; }

    public int PostgresPort { get; init; } = 5442;

    /// <summary>AMQP port of the harness's RabbitMQ node; management is this + 10,000, distribution + 20,000.</summary>
    public int RabbitPort { get; init; } = 5682;

    public string Mode => Full ? "full" : "short";

    /// <summary>Picks the full or the short value of a setting.</summary>
    public T Pick<T>(T full, T quick) => Full ? full : quick;

    public bool Runs(string row) => Rows.Count == 0 || Rows.Any(r => row.StartsWith(r, StringComparison.OrdinalIgnoreCase));

    public static FaultOptions Parse(IReadOnlyList<string> args)
    {
        var options = new FaultOptions();
        for (var i = 0; i < args.Count; i++)
        {
            string Value() => i + 1 < args.Count ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            options = args[i] switch
            {
                "--short" => options with { Full = false },
                "--full" => options with { Full = true },
                "--seed" => options with { Seed = int.Parse(Value(), CultureInfo.InvariantCulture) },
                "--rows" => options with { Rows = Value().Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) },
                "--out" => options with { Output = Value() },
                "--known-missed" => options with { KnownMissed = Value().Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) },
                "--keep" => options with { Keep = true },
                "--postgres-port" => options with { PostgresPort = int.Parse(Value(), CultureInfo.InvariantCulture) },
                "--rabbitmq-port" => options with { RabbitPort = int.Parse(Value(), CultureInfo.InvariantCulture) },
                _ => throw new ArgumentException($"unknown argument '{args[i]}'"),
            };
        }
        return options;
    }

    public const string Usage = """
        usage: pipelines-faults [--short | --full] [--seed N] [--rows ID,...] [--known-missed ID,...] [--out FILE] [--keep]
                                [--postgres-port 5442] [--rabbitmq-port 5682]

          --short   the CI run: every row, shortened (a few minutes); the default
          --full    the durations of issue 7 (about 30 minutes)
          --rows    only the rows whose id starts with one of these (e.g. kill9,broker,definitions)
          --out     also write the report, as markdown, to FILE
          --known-missed ID,...
                    rows whose bar is known to be missed (a finding not fixed yet): reported, but
                    they do not make the exit code 1
          --keep    keep the temporary folder with every process's log, ledger and definition file

        Needs root (it runs PostgreSQL as postgres), PostgreSQL 15, rabbitmq-server and, for the
        container rows, a Docker engine (DOCKER_HOST or /var/run/docker.sock) with the test image.
        Exits 1 when a row misses its bar or cannot run, unless it is listed in --known-missed.
        """;
}
