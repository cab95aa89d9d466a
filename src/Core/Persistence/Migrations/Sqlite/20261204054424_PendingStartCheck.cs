using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Pipelines.Core.Persistence.Migrations.Sqlite
{
    /// <inheritdoc />
    public partial class PendingStartCheck : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<long>(
                name: "StartCheckAt",
                table: "runs",
                type: "INTEGER",
                nullable: true);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropColumn(
                name: "StartCheckAt",
                table: "runs");
        }
    }
}
