using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Pipelines.Core.Persistence.Migrations.Postgres
{
    /// <inheritdoc />
    public partial class CompensationLease : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<DateTimeOffset>(
                name: "CompensationCheckAt",
                table: "runs",
                type: "timestamp with time zone",
                nullable: true);

            migrationBuilder.AddColumn<DateTimeOffset>(
                name: "CompensationQuietSince",
                table: "runs",
                type: "timestamp with time zone",
                nullable: true);

            migrationBuilder.AddColumn<DateTimeOffset>(
                name: "CompensationEndedAt",
                table: "run_steps",
                type: "timestamp with time zone",
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
