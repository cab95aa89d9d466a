using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Pipelines.Core.Persistence.Migrations.Sqlite
{
    /// <inheritdoc />
    public partial class ChainStallCheck : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<long>(
                name: "QuietSince",
                table: "run_chains",
                type: "INTEGER",
                nullable: true);

            migrationBuilder.AddColumn<long>(
                name: "StallCheckAt",
                table: "run_chains",
                type: "INTEGER",
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
