#!/usr/bin/env bash
# Coverage-guided fuzzing (libFuzzer through cargo-fuzz) of every event
# parser and each function's dispatch: `ballast::reconcile::read_payload`.
# Seeds: events/ and fuzz/regressions/. Installs on first use: the nightly
# toolchain (rustup, minimal profile) and cargo-fuzz (pinned).
#   scripts/fuzz.sh            5 minutes
#   FUZZ_SECONDS=3600 scripts/fuzz.sh
# A crash leaves its input in fuzz/artifacts/payload/: copy it into
# fuzz/regressions/ (the test suite replays that folder on stable Rust),
# then fix the code.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root/fuzz"
seconds="${FUZZ_SECONDS:-300}"
if ! rustup toolchain list | grep -q '^nightly'; then
  echo "==> rustup toolchain install nightly --profile minimal" >&2
  rustup toolchain install nightly --profile minimal
fi
if ! cargo +nightly fuzz --version 2>/dev/null | grep -q '0.13.1'; then
  echo "==> cargo install cargo-fuzz 0.13.1" >&2
  # Built with stable: its locked dependencies predate what nightly accepts.
  cargo +stable install cargo-fuzz --version 0.13.1 --locked
fi
mkdir -p corpus/payload
cp "$root"/events/*.json corpus/payload/
cp "$root"/fuzz/regressions/* corpus/payload/ 2>/dev/null || true
echo "==> fuzzing read_payload for ${seconds}s (log: fuzz/fuzz.log)"
rc=0
cargo +nightly fuzz run payload corpus/payload -- \
  -max_total_time="$seconds" -dict="$root/fuzz/json.dict" -print_final_stats=1 \
  > fuzz.log 2>&1 || rc=$?
grep -aE "^#[0-9]+[[:space:]]+(INITED|DONE)|^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)|^==[0-9]+==|panicked|^SUMMARY" fuzz.log || true
if [ "$rc" -ne 0 ] || [ -n "$(ls -A artifacts/payload 2>/dev/null)" ]; then
  tail -40 fuzz.log >&2
  echo "fuzzing failed (exit $rc); crash inputs, if any, are in fuzz/artifacts/payload" >&2
  exit 1
fi
