#!/usr/bin/env bash
# The one test command (README, CI): start the backing services, then run every test.
#
#   bash eng/test.sh [dotnet test arguments...]
#
# Integration tests read the settings exported by eng/services.sh. With CI=true a missing
# service fails those tests instead of skipping them.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $(id -u) -eq 0 ]]; then
  eval "$(bash eng/services.sh up)"
else
  echo "test: not root; using services already running (bash eng/services.sh up needs root)" >&2
  eval "$(bash eng/services.sh env)"
fi

dotnet test Pipelines.sln --nologo --logger "console;verbosity=normal" "$@"
