using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Pipelines.Core.Persistence.Migrations.Sqlite
{
    /// <inheritdoc />
    public partial class StepErrorKind : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<string>(
                name: "ErrorKind",
                table: "step_attempts",
                type: "TEXT",
                maxLength: 64,
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "ErrorKind",
                table: "run_steps",
                type: "TEXT",
                maxLength: 64,
                nullable: true);

            migrationBuilder.Sql(StepErrorKindBackfill.For("step_attempts"));
            migrationBuilder.Sql(StepErrorKindBackfill.For("run_steps"));
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropColumn(
                name: "ErrorKind",
                table: "step_attempts");

            migrationBuilder.DropColumn(
                name: "ErrorKind",
                table: "run_steps");
        }
    }
}
