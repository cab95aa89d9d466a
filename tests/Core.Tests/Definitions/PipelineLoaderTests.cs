using System.Text.Json;
using System.Text.Json.Serialization;
using Pipelines.Core.Definitions;
using Pipelines.Tests;

namespace Pipelines.Core.Tests.Definitions;

public sealed class PipelineLoaderTests
{
    private static readonly JsonSerializerOptions ModelJson = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower) },
        WriteIndented = true,
    };

    [Fact]
    public void example_pipelines_of_the_repository_load_without_diagnostics()
    {
        var result = CaseLoader.Loader(new Dictionary<string, string>()).LoadFile(RepositoryRoot.File("config/pipelines.yaml"));

        Assert.Empty(result.Diagnostics);
        var pipelines = result.Definitions!.Pipelines;
        Assert.Equal(["orders-report", "word-count"], pipelines.Keys.Order(StringComparer.Ordinal));
        Assert.Equal("busybox:1.36", pipelines["word-count"].FindStep("count")!.ImageReference);
        Assert.Equal(["price-orders", "load-customers"], pipelines["orders-report"].FindStep("build-report")!.DependsOn);
    }

    [Fact]
    public void json_definition_yields_the_same_model_as_its_yaml_equivalent()
    {
        const string yaml = """
            pipelines:
              nightly:
                description: Load and report.
                parameters:
                  day: { type: string, required: true }
                  limit: { type: integer, default: 10 }
                defaults:
                  retry: { attempts: 3, backoff: fixed, initial: 500ms, max: 10s }
                  timeout: 10m
                steps:
                  - name: fetch
                    image: registry.example.com/team/fetch
                    tag: "1.4"
                    command: [fetch, --day, today]
                    env: { MODE: full, TOKEN: "${secret:API_TOKEN}" }
                    volumes: ["./data:/data:ro"]
                    resources: { memory: 256m, cpus: 0.5, pids: 64 }
                    registry: { username: robot, password: "${REGISTRY_PASSWORD}" }
                    sidecars:
                      - name: cache
                        image: redis
                  - name: report
                    handler: reports.build
                    depends_on: [fetch]
                    pool: reports
                    skip_in_env: [dev]
                schedules:
                  - name: nightly
                    cron: "0 2 * * *"
                    timezone: Europe/Berlin
                    payload: { day: today, limit: 5 }
            """;
        const string json = """
            {
              "pipelines": {
                "nightly": {
                  "description": "Load and report.",
                  "parameters": {
                    "day": { "type": "string", "required": true },
                    "limit": { "type": "integer", "default": 10 }
                  },
                  "defaults": {
                    "retry": { "attempts": 3, "backoff": "fixed", "initial": "500ms", "max": "10s" },
                    "timeout": "10m"
                  },
                  "steps": [
                    {
                      "name": "fetch",
                      "image": "registry.example.com/team/fetch",
                      "tag": "1.4",
                      "command": ["fetch", "--day", "today"],
                      "env": { "MODE": "full", "TOKEN": "${secret:API_TOKEN}" },
                      "volumes": ["./data:/data:ro"],
                      "resources": { "memory": "256m", "cpus": 0.5, "pids": 64 },
                      "registry": { "username": "robot", "password": "${REGISTRY_PASSWORD}" },
                      "sidecars": [{ "name": "cache", "image": "redis" }]
                    },
                    {
                      "name": "report",
                      "handler": "reports.build",
                      "depends_on": ["fetch"],
                      "pool": "reports",
                      "skip_in_env": ["dev"]
                    }
                  ],
                  "schedules": [
                    {
                      "name": "nightly",
                      "cron": "0 2 * * *",
                      "timezone": "Europe/Berlin",
                      "payload": { "day": "today", "limit": 5 }
                    }
                  ]
                }
              }
            }
            """;

        var fromYaml = CaseLoader.Load(yaml, "nightly.yaml");
        var fromJson = CaseLoader.Load(json, "nightly.json");

        Assert.Empty(fromYaml.Diagnostics);
        Assert.Empty(fromJson.Diagnostics);
        Assert.Equal(Serialize(fromYaml.Definitions!), Serialize(fromJson.Definitions!));
        var fetch = fromJson.Definitions!.Pipelines["nightly"].FindStep("fetch")!;
        Assert.Equal("registry.example.com/team/fetch:1.4", fetch.ImageReference);
        Assert.Equal(256L * 1024 * 1024, fetch.Resources!.Memory!.Value.Bytes);
        Assert.True(fetch.Volumes.Single().ReadOnly);
    }

    [Fact]
    public void copili_service_containers_also_form_a_services_pipeline_run_daily_at_midnight()
    {
        const string copili = """
            nightly-load:
              - name: fetch
                image_repo: registry.example.com/team/fetch
                tag: "1.4"
              - name: api
                image_repo: registry.example.com/team/api
                is_service_container: true
                dependencies: [fetch]
                env_vars: { PORT: "8080" }
              - name: load
                image_repo: registry.example.com/team/load
                dependencies: [fetch]
                exlude_in_env: [dev]
              - name: index
                image_repo: registry.example.com/team/index
                is_service_container: true
                dependencies: [load, api]
            """;

        var result = CaseLoader.Load(copili, "copili.yaml");

        Assert.Empty(result.Diagnostics);
        var pipelines = result.Definitions!.Pipelines;
        Assert.Equal(["nightly-load", "nightly-load-services"], pipelines.Keys.Order(StringComparer.Ordinal));
        var main = pipelines["nightly-load"];
        Assert.Equal(["fetch", "api", "load", "index"], main.Steps.Select(s => s.Name));
        Assert.Equal(["dev"], main.FindStep("load")!.SkipInEnv);
        Assert.Equal("8080", main.FindStep("api")!.Env["PORT"]);
        Assert.Empty(main.Schedules);

        var services = pipelines["nightly-load-services"];
        Assert.Equal(["api", "index"], services.Steps.Select(s => s.Name));
        Assert.Empty(services.FindStep("api")!.DependsOn);
        Assert.Equal(["api"], services.FindStep("index")!.DependsOn);
        var schedule = Assert.Single(services.Schedules);
        Assert.True(schedule.Enabled);
        Assert.True(CronSchedule.TryNormalize(schedule.Cron, out var quartz, out _));
        Assert.True(CronSchedule.TryFindTimeZone(schedule.Timezone, out var zone, out _));
        Assert.Equal(
            [new DateTimeOffset(2026, 3, 11, 0, 0, 0, TimeSpan.Zero), new DateTimeOffset(2026, 3, 12, 0, 0, 0, TimeSpan.Zero)],
            CronSchedule.NextFireTimes(quartz, zone, new DateTimeOffset(2026, 3, 10, 13, 0, 0, TimeSpan.Zero), 2));
    }

    [Fact]
    public void copili_dependency_on_an_unknown_container_is_a_warning_and_the_file_still_loads()
    {
        const string copili = """
            nightly-load:
              - name: load
                image_repo: loader
                dependencies: [fetch]
            """;

        var result = CaseLoader.Load(copili, "copili.yaml");

        Assert.Equal(
            "copili.yaml:4:20: warning: copili container 'load' depends on unknown container 'fetch'; ignored, as copili does",
            CaseLoader.Lines(result));
        Assert.Empty(result.Definitions!.Pipelines["nightly-load"].FindStep("load")!.DependsOn);
    }

    [Fact]
    public void copili_registry_password_written_as_a_bare_variable_is_kept_as_a_reference()
    {
        const string copili = """
            nightly-load:
              - name: load
                image_repo: registry.example.com/team/loader
                image_reg_username: robot
                image_reg_password: $REGISTRY_PASSWORD
            """;

        var result = CaseLoader.Load(copili, "copili.yaml", new Dictionary<string, string> { ["REGISTRY_PASSWORD"] = "hunter2" });

        Assert.Empty(result.Diagnostics);
        Assert.Equal(new SecretReference("REGISTRY_PASSWORD"), result.Definitions!.Pipelines["nightly-load"].Steps[0].Registry!.Password);
    }

    [Fact]
    public void variable_defaults_apply_as_in_a_posix_shell()
    {
        const string yaml = """
            pipelines:
              etl:
                steps:
                  - name: load
                    image: loader
                    env:
                      SET: ${SET}
                      UNSET_WITH_DEFAULT: ${UNSET:-fallback}
                      EMPTY_WITH_COLON_DEFAULT: ${EMPTY:-fallback}
                      EMPTY_WITH_PLAIN_DEFAULT: ${EMPTY-fallback}
                      UNSET_WITH_PLAIN_DEFAULT: ${UNSET-fallback}
                      LITERAL: $${SET} costs $$5
                      EMBEDDED: "postgres://${SET}:5432/db"
            """;

        var result = CaseLoader.Load(yaml, variables: new Dictionary<string, string> { ["SET"] = "db.internal", ["EMPTY"] = "" });

        Assert.Empty(result.Diagnostics);
        var env = result.Definitions!.Pipelines["etl"].Steps[0].Env;
        Assert.Equal("db.internal", env["SET"]);
        Assert.Equal("fallback", env["UNSET_WITH_DEFAULT"]);
        Assert.Equal("fallback", env["EMPTY_WITH_COLON_DEFAULT"]);
        Assert.Equal("", env["EMPTY_WITH_PLAIN_DEFAULT"]);
        Assert.Equal("fallback", env["UNSET_WITH_PLAIN_DEFAULT"]);
        Assert.Equal("${SET} costs $5", env["LITERAL"]);
        Assert.Equal("postgres://db.internal:5432/db", env["EMBEDDED"]);
    }

    [Fact]
    public void dotenv_file_beside_the_definition_supplies_variables_and_the_environment_overrides_it()
    {
        const string overridden = "PIPELINES_TEST_DOTENV_OVERRIDDEN";
        using var directory = new TemporaryDirectory();
        File.WriteAllText(Path.Combine(directory.Path, ".env"), $"""
            # settings for the loader
            export PIPELINES_TEST_DOTENV_IMAGE=registry.example.com/team/loader
            PIPELINES_TEST_DOTENV_TAG="2.1"
            {overridden}=from-dotenv
            """);
        var file = Path.Combine(directory.Path, "pipelines.yaml");
        File.WriteAllText(file, $$"""
            pipelines:
              etl:
                steps:
                  - name: load
                    image: ${PIPELINES_TEST_DOTENV_IMAGE}
                    tag: ${PIPELINES_TEST_DOTENV_TAG}
                    env:
                      SOURCE: ${{{overridden}}}
            """);
        Environment.SetEnvironmentVariable(overridden, "from-environment");
        try
        {
            var result = new PipelineLoader().LoadFile(file);

            Assert.Empty(result.Diagnostics);
            var step = result.Definitions!.Pipelines["etl"].Steps[0];
            Assert.Equal("registry.example.com/team/loader:2.1", step.ImageReference);
            Assert.Equal("from-environment", step.Env["SOURCE"]);
        }
        finally
        {
            Environment.SetEnvironmentVariable(overridden, null);
        }
    }

    [Fact]
    public void secrets_stay_references_and_their_values_never_enter_the_model()
    {
        const string yaml = """
            pipelines:
              etl:
                steps:
                  - name: load
                    image: registry.example.com/team/loader
                    env:
                      TOKEN: ${secret:API_TOKEN}
                    command: [load, --token, "${secret:API_TOKEN}"]
                    registry:
                      username: robot
                      password: ${REGISTRY_PASSWORD}
            """;

        var result = CaseLoader.Load(yaml, variables: new Dictionary<string, string>
        {
            ["REGISTRY_PASSWORD"] = "hunter2",
            ["API_TOKEN"] = "s3cr3t-token",
        });

        Assert.Empty(result.Diagnostics);
        var step = result.Definitions!.Pipelines["etl"].Steps[0];
        Assert.Equal("${secret:API_TOKEN}", step.Env["TOKEN"]);
        Assert.Equal(["load", "--token", "${secret:API_TOKEN}"], step.Command!.Arguments);
        Assert.Equal(new SecretReference("REGISTRY_PASSWORD"), step.Registry!.Password);
        var model = Serialize(result.Definitions);
        Assert.DoesNotContain("hunter2", model, StringComparison.Ordinal);
        Assert.DoesNotContain("s3cr3t-token", model, StringComparison.Ordinal);
    }

    [Fact]
    public void literal_registry_password_is_refused_without_echoing_it()
    {
        const string yaml = """
            pipelines:
              etl:
                steps:
                  - name: load
                    image: loader
                    registry: { username: robot, password: hunter2 }
            """;

        var result = CaseLoader.Load(yaml);

        Assert.Null(result.Definitions);
        Assert.DoesNotContain("hunter2", CaseLoader.Lines(result), StringComparison.Ordinal);
    }

    [Fact]
    public void schema_key_at_the_top_is_accepted_in_json_and_yaml()
    {
        const string json = """
            {
              "$schema": "../docs/pipelines.schema.json",
              "pipelines": { "etl": { "steps": [ { "name": "extract", "handler": "etl.extract" } ] } }
            }
            """;
        const string yaml = """
            $schema: https://pipelines.dev/schema/pipelines.schema.json
            pipelines: { etl: { steps: [ { name: extract, handler: etl.extract } ] } }
            """;

        var fromJson = CaseLoader.Load(json, "etl.json");
        var fromYaml = CaseLoader.Load(yaml, "etl.yaml");

        Assert.Empty(fromJson.Diagnostics);
        Assert.Empty(fromYaml.Diagnostics);
        Assert.Equal("../docs/pipelines.schema.json", fromJson.Definitions!.Schema);
    }

    [Fact]
    public void extension_keys_are_ignored_in_every_mapping_of_fixed_keys()
    {
        const string yaml = """
            x-top: &loader { image: loader }
            pipelines:
              etl:
                x-pipeline: 1
                parameters: { day: { type: string, x-parameter: 1 } }
                defaults: { x-defaults: 1, retry: { x-retry: 1, attempts: 2 } }
                steps:
                  - name: load
                    x-step: 1
                    <<: *loader
                    resources: { x-resources: 1, memory: 64m }
                    registry: { x-registry: 1, username: robot, password: "${secret:REGISTRY_PASSWORD}" }
                    volumes: [ { x-volume: 1, source: ./data, target: /data } ]
                    sidecars: [ { x-sidecar: 1, name: cache, image: redis, build: null } ]
                schedules: [ { x-schedule: 1, name: nightly, cron: "@daily" } ]
            """;

        var result = CaseLoader.Load(yaml);

        Assert.Empty(result.Diagnostics);
        Assert.Equal("/data", result.Definitions!.Pipelines["etl"].Steps[0].Volumes.Single().Target);
    }

    [Fact]
    public void variable_default_may_hold_further_references_read_only_when_it_is_used()
    {
        const string yaml = """
            pipelines:
              etl:
                steps:
                  - name: load
                    image: loader
                    env:
                      NESTED: ${UNSET:-${HOST}}
                      TWO_LEVELS: ${UNSET:-${ALSO_UNSET:-localhost}:5432}
                      IN_TEXT: postgres://${UNSET:-${HOST}:${PORT:-5432}}/db
                      UNUSED: ${HOST:-${NOT_SET_EITHER}}
                      SECRET_BY_DEFAULT: ${UNSET:-${secret:DB_PASSWORD}}
                      LITERAL_IN_DEFAULT: ${UNSET:-$${HOST}}
            """;

        var result = CaseLoader.Load(yaml, variables: new Dictionary<string, string> { ["HOST"] = "db.internal" });

        Assert.Empty(result.Diagnostics);
        Assert.Equal(
            new Dictionary<string, string>
            {
                ["NESTED"] = "db.internal",
                ["TWO_LEVELS"] = "localhost:5432",
                ["IN_TEXT"] = "postgres://db.internal:5432/db",
                ["UNUSED"] = "db.internal",
                ["SECRET_BY_DEFAULT"] = "${secret:DB_PASSWORD}",
                ["LITERAL_IN_DEFAULT"] = "${HOST}",
            },
            result.Definitions!.Pipelines["etl"].Steps[0].Env);
    }

    [Fact]
    public void escaped_secret_reference_stays_literal_text_that_workers_do_not_resolve()
    {
        const string yaml = """
            pipelines:
              etl:
                steps:
                  - name: load
                    image: loader
                    env:
                      LITERAL: $${secret:API_TOKEN}
                      DOLLAR_THEN_SECRET: $$${secret:API_TOKEN}
                      FROM_VARIABLE: ${TEMPLATE}
                    command: echo '$${secret:API_TOKEN}' "$$"${secret:API_TOKEN}
                    entrypoint: ["$${secret:API_TOKEN}"]
            """;

        var result = CaseLoader.Load(yaml, variables: new Dictionary<string, string> { ["TEMPLATE"] = "${secret:API_TOKEN}" });

        Assert.Empty(result.Diagnostics);
        var step = result.Definitions!.Pipelines["etl"].Steps[0];
        string Resolve(string text) => SecretText.Resolve(text, name => $"<{name}>");
        Assert.Equal("${secret:API_TOKEN}", Resolve(step.Env["LITERAL"]));
        Assert.Equal("$<API_TOKEN>", Resolve(step.Env["DOLLAR_THEN_SECRET"]));
        Assert.Equal("${secret:API_TOKEN}", Resolve(step.Env["FROM_VARIABLE"]));
        Assert.Equal(["echo", "${secret:API_TOKEN}", "$<API_TOKEN>"], step.Command!.Arguments.Select(Resolve));
        Assert.Equal(["${secret:API_TOKEN}"], step.Entrypoint!.Arguments.Select(Resolve));
        Assert.Equal("$${secret:API_TOKEN}", step.Env["LITERAL"]);
        Assert.Empty(SecretText.Names(step.Env["LITERAL"]));
    }

    [Theory]
    [InlineData("true", true)]
    [InlineData("True", true)]
    [InlineData("false", false)]
    [InlineData("", false)]
    public void copili_service_flag_is_a_boolean(string flag, bool isService)
    {
        var copili = $"""
            nightly-load:
              - name: api
                image_repo: registry.example.com/team/api
                is_service_container: {flag}
            """;

        var result = CaseLoader.Load(copili, "copili.yaml");

        Assert.Empty(result.Diagnostics);
        Assert.Equal(isService, result.Definitions!.Pipelines.ContainsKey("nightly-load-services"));
    }

    private static string Serialize(PipelineFileDefinition definitions) => JsonSerializer.Serialize(definitions, ModelJson);

    private sealed class TemporaryDirectory : IDisposable
    {
        public string Path { get; } = Directory.CreateTempSubdirectory("pipelines-tests-").FullName;

        public void Dispose() => Directory.Delete(Path, recursive: true);
    }
}
