using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Pipelines.Core.Persistence.Migrations.Postgres
{
    /// <inheritdoc />
    public partial class ChainStallCheck : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<DateTimeOffset>(
                name: "QuietSince",
                table: "run_chains",
                type: "timestamp with time zone",
                nullable: true);

            migrationBuilder.AddColumn<DateTimeOffset>(
                name: "StallCheckAt",
                table: "run_chains",
                type: "timestamp with time zone",
                nullable: true);

            migrationBuilder.CreateIndex(
                name: "IX_run_chains_State_StallCheckAt",
                table: "run_chains",
                columns: new[] { "State", "StallCheckAt" });
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropIndex(
                name: "IX_run_chains_State_StallCheckAt",
                table: "run_chains");

            migrationBuilder.DropColumn(
                name: "QuietSince",
                table: "run_chains");

            migrationBuilder.DropColumn(
                name: "StallCheckAt",
                table: "run_chains");
        }
    }
}
