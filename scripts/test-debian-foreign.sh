#!/usr/bin/env bash
# A full Debian guest of another architecture, by hand (not in scripts/test.sh: its build emulates
# a whole Debian installation under TCG, see docs/architectures.md and decision 0013): builds the
# image unless it is cached, runs its example job on it (test/long/LABEL.test.ts), then the
# run-step conformance cases on it.
# Usage: test-debian-foreign.sh LABEL   (debian-12-arm64 or debian-13-riscv64)
set -euo pipefail
label=${1:?usage: test-debian-foreign.sh LABEL (debian-12-arm64 or debian-13-riscv64)}
cd "$(dirname "$0")/.."
[ -f "test/long/$label.test.ts" ] || { echo "no test/long/$label.test.ts" >&2; exit 2; }
bash scripts/services.sh
status=0
node --import tsx --test --test-reporter=spec "test/long/$label.test.ts" || status=$?
echo "test: step semantics on $label"
SOLSTICE_TEST_LABEL=$label node --import tsx --test --test-reporter=spec test/conformance/step-semantics.test.ts || status=$?
exit "$status"
