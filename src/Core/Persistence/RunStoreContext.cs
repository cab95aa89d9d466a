using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Storage.ValueConversion;
using Pipelines.Core.Runs;

namespace Pipelines.Core.Persistence;

/// <summary>
/// The run store's schema. Each provider has its own subclass so that each keeps its own
/// migrations (<c>Persistence/Migrations/Postgres</c>, <c>Persistence/Migrations/Sqlite</c>).
/// </summary>
public abstract class RunStoreContext(DbContextOptions options) : DbContext(options)
{
    public DbSet<RunRecord> Runs => Set<RunRecord>();
    public DbSet<StepRecord> Steps => Set<StepRecord>();
    public DbSet<ChainRecord> Chains => Set<ChainRecord>();
    public DbSet<StepAttemptRecord> Attempts => Set<StepAttemptRecord>();
    public DbSet<StepLogRecord> Logs => Set<StepLogRecord>();

    protected override void ConfigureConventions(ModelConfigurationBuilder configurationBuilder)
    {
        ArgumentNullException.ThrowIfNull(configurationBuilder);
        configurationBuilder.Properties<RunState>().HaveConversion<string>().HaveMaxLength(16);
        configurationBuilder.Properties<StepState>().HaveConversion<string>().HaveMaxLength(16);
        configurationBuilder.Properties<ChainState>().HaveConversion<string>().HaveMaxLength(16);
    }

    protected override void OnModelCreating(ModelBuilder modelBuilder)
    {
        ArgumentNullException.ThrowIfNull(modelBuilder);

        modelBuilder.Entity<RunRecord>(run =>
        {
            run.ToTable("runs");
            run.HasKey(r => r.Id);
            run.Property(r => r.Pipeline).HasMaxLength(128);
            run.Property(r => r.DefinitionHash).HasMaxLength(64);
            run.Property(r => r.IdempotencyKey).HasMaxLength(256);
            run.Property(r => r.Trigger).HasMaxLength(16);
            run.Property(r => r.Schedule).HasMaxLength(256);
            run.Property(r => r.FailedStep).HasMaxLength(128);
            run.Property(r => r.TraceParent).HasMaxLength(64);
            run.HasIndex(r => r.IdempotencyKey).IsUnique();
            run.HasIndex(r => new { r.Pipeline, r.State, r.CreatedAt });
            run.HasIndex(r => new { r.State, r.CreatedAt });
            run.HasIndex(r => new { r.Schedule, r.State });
            run.HasMany(r => r.Steps).WithOne().HasForeignKey(s => s.RunId);
        });

        modelBuilder.Entity<StepRecord>(step =>
        {
            step.ToTable("run_steps");
            step.HasKey(s => new { s.RunId, s.Name });
            step.Property(s => s.Name).HasMaxLength(128);
            step.Property(s => s.LeaseOwner).HasMaxLength(128);
            step.Property(s => s.ErrorKind).HasMaxLength(64);
            step.Property(s => s.ErrorType).HasMaxLength(512);
            // Lease reaper: detached steps whose worker stopped renewing.
            step.HasIndex(s => new { s.State, s.LeaseExpiresAt });
        });

        modelBuilder.Entity<ChainRecord>(chain =>
        {
            chain.ToTable("run_chains");
            chain.HasKey(c => new { c.RunId, c.Index });
            chain.HasOne<RunRecord>().WithMany().HasForeignKey(c => c.RunId);
            // Stall sweep: dispatched chains due for a look.
            chain.HasIndex(c => new { c.State, c.StallCheckAt });
        });

        modelBuilder.Entity<StepAttemptRecord>(attempt =>
        {
            attempt.ToTable("step_attempts");
            attempt.HasKey(a => a.Id);
            attempt.Property(a => a.Step).HasMaxLength(128);
            attempt.Property(a => a.Worker).HasMaxLength(128);
            attempt.Property(a => a.ErrorKind).HasMaxLength(64);
            attempt.Property(a => a.ErrorType).HasMaxLength(512);
            attempt.HasIndex(a => new { a.RunId, a.Step, a.Number }).IsUnique();
            attempt.HasOne<RunRecord>().WithMany().HasForeignKey(a => a.RunId);
        });

        modelBuilder.Entity<StepLogRecord>(log =>
        {
            log.ToTable("step_logs");
            log.HasKey(l => l.Id);
            log.Property(l => l.Step).HasMaxLength(128);
            log.Property(l => l.Stream).HasMaxLength(8);
            log.HasIndex(l => new { l.RunId, l.Step, l.Attempt, l.Id });
            log.HasOne<RunRecord>().WithMany().HasForeignKey(l => l.RunId);
        });
    }
}

public sealed class PostgresRunStoreContext(DbContextOptions<PostgresRunStoreContext> options) : RunStoreContext(options);

public sealed class SqliteRunStoreContext(DbContextOptions<SqliteRunStoreContext> options) : RunStoreContext(options)
{
    protected override void ConfigureConventions(ModelConfigurationBuilder configurationBuilder)
    {
        base.ConfigureConventions(configurationBuilder);
        // SQLite cannot compare or order DateTimeOffset values; store them as sortable numbers.
        configurationBuilder.Properties<DateTimeOffset>().HaveConversion<DateTimeOffsetToBinaryConverter>();
    }
}
