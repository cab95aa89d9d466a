using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Pipelines.Core.Persistence.Migrations.Sqlite
{
    /// <inheritdoc />
    public partial class CompensationLease : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<long>(
                name: "CompensationCheckAt",
                table: "runs",
                type: "INTEGER",
                nullable: true);

            migrationBuilder.AddColumn<long>(
                name: "CompensationQuietSince",
                table: "runs",
                type: "INTEGER",
                nullable: true);

            migrationBuilder.AddColumn<long>(
                name: "CompensationEndedAt",
                table: "run_steps",
                type: "INTEGER",
                nullable: true);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropColumn(
                name: "CompensationCheckAt",
                table: "runs");

            migrationBuilder.DropColumn(
                name: "CompensationQuietSince",
                table: "runs");

            migrationBuilder.DropColumn(
                name: "CompensationEndedAt",
                table: "run_steps");
        }
    }
}
