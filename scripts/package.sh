#!/usr/bin/env bash
# `make package` (after `make sam-build`): a zip per function and
# dist/ballast.template.json, the template with the SAM transform applied and
# its code in S3, checked (scripts/package.py says how), then linted.
#   scripts/package.sh           write and check
#   scripts/package.sh --check   check what dist/ holds
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"
".venv-tools/bin/python" scripts/package.py "$@"
echo "==> cfn-lint dist/ballast.template.json"
".venv-tools/bin/cfn-lint" dist/ballast.template.json
