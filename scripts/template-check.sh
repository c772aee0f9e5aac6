#!/usr/bin/env bash
# Static checks of the SAM templates: cfn-lint on Ballast's template and on
# the example stack, then `sam validate --lint`. Needs no AWS account.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="$root/.venv-tools/bin"
export SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"
cd "$root"
echo "==> cfn-lint template.yaml examples/multi-az-web/template.yaml"
"$bin/cfn-lint" template.yaml examples/multi-az-web/template.yaml
echo "==> sam validate --lint"
"$bin/sam" validate --lint --template-file template.yaml --region "$AWS_DEFAULT_REGION"
