#!/usr/bin/env bash
# The whole suite: types, lint, generated code, then every test file against the real
# PostgreSQL, RabbitMQ and QEMU on this machine. See docs/testing.md for the time budget.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/services.sh
node_modules/.bin/tsc --noEmit -p tsconfig.json
node_modules/.bin/biome check .
# Node 20 neither expands globs nor finds .ts test files itself: list them explicitly.
mapfile -t files < <(find packages services test -name '*.test.ts' -not -path '*/node_modules/*' | sort)
echo "test: ${#files[@]} test files"
exec node --import tsx --test --test-concurrency=2 --test-reporter=spec "${files[@]}"
