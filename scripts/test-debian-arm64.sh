#!/usr/bin/env bash
# The debian-12-arm64 guest, by hand (not in scripts/test.sh: its build emulates a whole Debian
# installation under TCG, see docs/architectures.md): builds the image unless it is cached, runs
# examples/debian-arm64.yml on it, then the run-step conformance cases on it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/services.sh
status=0
node --import tsx --test --test-reporter=spec test/long/debian-12-arm64.test.ts || status=$?
echo "test: step semantics on debian-12-arm64"
SOLSTICE_TEST_LABEL=debian-12-arm64 node --import tsx --test --test-reporter=spec test/conformance/step-semantics.test.ts || status=$?
exit "$status"
