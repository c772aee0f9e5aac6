#!/usr/bin/env bash
# Prints each function's release binary size and the size of its Lambda
# deployment zip (the binary renamed `bootstrap`, zip -9).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
printf '%-20s %12s %12s\n' function binary zip
for f in "$@"; do
  bin="$root/target/release/$f"
  mkdir -p "$tmp/$f" && cp "$bin" "$tmp/$f/bootstrap"
  (cd "$tmp/$f" && zip -q -9 bootstrap.zip bootstrap)
  printf '%-20s %12s %12s\n' "$f" "$(stat -c %s "$bin")" "$(stat -c %s "$tmp/$f/bootstrap.zip")"
done
