#!/usr/bin/env bash
# `sam build` of the control plane, as a user runs it: SAM's Rust builder
# (rust-cargolambda) runs `cargo lambda build --release --arm64` once per
# function in the workspace, cross-compiling with Zig. cargo-lambda and Zig
# come from PyPI into .venv-tools (scripts/venv.sh); the arm64 standard library
# from rustup. Prints the time taken; leaves .aws-sam/build/<Function>/bootstrap.
#   scripts/sam-build.sh              all functions
#   scripts/sam-build.sh RdsFailover  one function
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export PATH="$root/.venv-tools/bin:$PATH" SAM_CLI_TELEMETRY=0
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"
# SAM's builder asks for the experimental flag for Rust.
export SAM_CLI_BETA_RUST_CARGO_LAMBDA=1
if ! rustup target list --installed | grep -qx aarch64-unknown-linux-gnu; then
  echo "==> rustup target add aarch64-unknown-linux-gnu" >&2
  rustup target add aarch64-unknown-linux-gnu
fi
start=$(date +%s%N)
# --no-cached: see samconfig.toml (the checks write target/ meanwhile).
sam build --template-file template.yaml --beta-features --no-cached "$@"
end=$(date +%s%N)
# Each artifact must be an arm64 (ELF e_machine 0xB7) executable.
python3 - "$@" <<'PY'
import struct, sys
wanted = sys.argv[1:] or ["UnhealthyTarget", "RdsFailover", "AzImpairment", "WriterProbe"]
for name in wanted:
    path = f".aws-sam/build/{name}/bootstrap"
    with open(path, "rb") as f:
        head = f.read(20)
    machine = struct.unpack_from("<H", head, 18)[0]
    assert head[:4] == b"\x7fELF" and machine == 0xB7, f"{path} is not an arm64 ELF binary"
    print(f"{path}: arm64 ELF")
PY
printf 'sam build %s: %d.%01d s\n' "${*:-(all functions)}" $(( (end - start) / 1000000000 )) $(( (end - start) / 100000000 % 10 ))
