#!/usr/bin/env bash
# The whole suite: types, lint, generated code, then every test file against the real
# PostgreSQL, RabbitMQ and QEMU on this machine. See docs/testing.md for the time budget.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/services.sh
node_modules/.bin/tsc --noEmit -p tsconfig.json
node_modules/.bin/biome check .
# The guest images the tests boot, made before any test starts: on a bare machine that is
# tiny-fast's and debian-12-fast's kernels (~5 min each on 2 cores) and the Debian builds (~2-3 min
# each), which would otherwise run inside some test's time limit while other tests compete for the
# cores.
node --import tsx packages/ciadm/src/main.ts images prepare tiny tiny-fast debian-12 tiny-arm64 tiny-riscv64 tiny-arm64-fast debian-12-fast
# Node 20 neither expands globs nor finds .ts test files itself: list them explicitly.
# test/long is run by hand (corepack pnpm test:debian-arm64, test:debian-riscv64: images whose build is emulated).
mapfile -t files < <(find packages services test -name '*.test.ts' -not -path '*/node_modules/*' -not -path 'test/serial/*' -not -path 'test/system/*' -not -path 'test/long/*' | sort)
# test/serial restarts the machine's PostgreSQL (its RabbitMQ test uses a node of its own), so it runs
# alone, after the rest.
mapfile -t serial < <(find test/serial -name '*.test.ts' | sort)
echo "test: ${#files[@]} test files, then ${#serial[@]} alone"
# The suites that run jobs in VMs, once more in each other start mode (test/support/start-mode.ts):
# warm-pool hand-over on tiny, and snapshot restore on tiny-fast.
conformance=(test/conformance/checkout.test.ts test/conformance/guest-semantics.test.ts
  test/conformance/status-and-timeouts.test.ts test/conformance/step-semantics.test.ts)
modal=(test/spine.test.ts test/cancel-cleanup.test.ts "${conformance[@]}")
status=0
node --import tsx --test --test-concurrency=2 --test-reporter=spec "${files[@]}" || status=$?
for mode in warm restore; do
  echo "test: ${#modal[@]} files again, start mode $mode"
  SOLSTICE_TEST_START_MODE=$mode node --import tsx --test --test-concurrency=2 --test-reporter=spec "${modal[@]}" || status=$?
done
# The conformance files once more on a real distribution, debian-12-fast (systemd, dash, GNU tools),
# restored from its snapshot: the mode its jobs start in. Then the run-step cases booted cold and
# handed over warm on it; the other files in those two modes are run by hand (docs/testing.md,
# "Start modes").
debian=(test/conformance/actions.test.ts "${conformance[@]}")
echo "test: ${#debian[@]} conformance files again on debian-12-fast, start mode restore"
SOLSTICE_TEST_LABEL=debian-12-fast SOLSTICE_TEST_START_MODE=restore \
  node --import tsx --test --test-concurrency=2 --test-reporter=spec "${debian[@]}" || status=$?
for mode in cold warm; do
  echo "test: step semantics again on debian-12-fast, start mode $mode"
  SOLSTICE_TEST_LABEL=debian-12-fast SOLSTICE_TEST_START_MODE=$mode \
    node --import tsx --test --test-reporter=spec test/conformance/step-semantics.test.ts || status=$?
done
# The run-step conformance cases once more on a guest of another architecture (aarch64, TCG here).
echo "test: step semantics again on tiny-arm64"
SOLSTICE_TEST_LABEL=tiny-arm64 node --import tsx --test --test-reporter=spec test/conformance/step-semantics.test.ts || status=$?
node --import tsx --test --test-concurrency=1 --test-reporter=spec "${serial[@]}" || status=$?
# The compose deployment built and run with podman (test/system, root): alone and last, since its
# image builds and containerised VMs would take the cores from every other test. It installs
# podman itself (scripts/podman.sh) and fails, never skips, when something is missing.
node --import tsx --test --test-concurrency=1 --test-reporter=spec test/system/compose-up.test.ts || status=$?
bash scripts/services.sh >/dev/null
exit "$status"
