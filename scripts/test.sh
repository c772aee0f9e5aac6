#!/usr/bin/env bash
# `make test`: every check, in order, with `sam build` of the control plane
# alongside. `sam build` (arm64, cargo-lambda + Zig) is the longest step and
# needs nothing the others produce, while they leave a core idle for long
# stretches (the single-threaded LTO links of the release build, the
# template checks, the tests waiting on the emulator). So it starts first,
# in the background, at the lowest CPU priority (the checks and the tests
# run as if alone) and in its own target directory (no wait on the other
# builds' lock); its output is printed when it ends. Any failure fails the
# whole; a failing check stops the background build.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
cargo="${CARGO:-cargo}"
mkdir -p target
log="$root/target/sam-build.log"

# Its own session, so that a failing check can stop all of it (sam, cargo).
CARGO_TARGET_DIR="$root/target/sam" setsid nice -n 19 bash scripts/sam-build.sh >"$log" 2>&1 &
sam=$!
trap 'kill -- "-$sam" 2>/dev/null || true' EXIT

step() {
  echo "==> $*" >&2
  "$@"
}
# The Makefile's own targets, so that each check is written once.
step make --no-print-directory CARGO="$cargo" fmt lint template security release
step "$cargo" nextest run --workspace --locked

echo "==> sam build (started first, in the background)" >&2
status=0
wait "$sam" || status=$?
trap - EXIT
cat "$log"
[ "$status" -eq 0 ] || exit "$status"
# `make package` on what sam build left: zips, the packaged template, its
# checks and cfn-lint (seconds).
step bash scripts/package.sh
