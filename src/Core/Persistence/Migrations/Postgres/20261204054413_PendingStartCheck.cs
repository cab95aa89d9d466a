using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Pipelines.Core.Persistence.Migrations.Postgres
{
    /// <inheritdoc />
    public partial class PendingStartCheck : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<DateTimeOffset>(
                name: "StartCheckAt",
                table: "runs",
                type: "timestamp with time zone",
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
