# Ballast — the two everyday commands:
#   make demo   run the failure stories against a local AWS emulator (no AWS account)
#   make test   fmt check, clippy -D warnings, template and security checks, release build,
#               the whole test suite, and `sam build` of the control plane (arm64)
# What they need is installed, pinned, on first use: moto into .venv (the demo
# installs only that); SAM CLI, cfn-lint, cargo-lambda and Zig into .venv-tools
# (make test, make package); checkov into .venv-checkov; the AWS CLI into
# .venv-awscli (make test: the doctor-fix tests).

FUNCTIONS := unhealthy-target rds-failover az-impairment writer-probe
CARGO     ?= cargo

TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)

.PHONY: test demo bench fuzz venv tools awscli bench-venv release fmt lint lint-functions template security sam-build package size clean

# moto, for the tests and the demo.
venv:
	@bash scripts/venv.sh

# SAM CLI, cfn-lint, cargo-lambda and Zig.
tools:
	@bash scripts/venv.sh $(CURDIR)/.venv-tools $(CURDIR)/scripts/requirements-tools.txt

# The AWS CLI, for the tests that apply the fixes `ballast doctor` prints.
awscli:
	@bash scripts/venv.sh $(CURDIR)/.venv-awscli $(CURDIR)/scripts/requirements-awscli.txt

# The benchmarks' Python baseline (awslambdaric, boto3).
bench-venv:
	@bash scripts/venv.sh $(CURDIR)/.venv-bench $(CURDIR)/scripts/requirements-bench.txt

# One build per function: each enables only its own AWS services (Cargo
# features of the ballast library), which one build of all three would unify.
release:
	@for f in $(FUNCTIONS); do echo "$(CARGO) build --release --locked -p $$f"; $(CARGO) build --release --locked -p $$f || exit 1; done

fmt:
	$(CARGO) fmt --all -- --check

# The workspace, every feature on. (`make lint-functions` also lints each
# function alone, with only its own features: 4-5 minutes more, since the
# SDK crates are checked again without the CLI's and the tests' HTTP client.)
lint:
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

lint-functions:
	@for f in $(FUNCTIONS); do echo "$(CARGO) clippy -p $$f --locked -- -D warnings"; $(CARGO) clippy -p $$f --locked -- -D warnings || exit 1; done

# cfn-lint on both templates and `sam validate --lint`.
template: tools
	@bash scripts/template-check.sh

# checkov on template.yaml (its own venv: .venv-checkov).
security:
	@bash scripts/security-check.sh

# `sam build` of template.yaml: an arm64 bootstrap per function, timed.
sam-build: tools
	@bash scripts/sam-build.sh

# Org-wide rollout: `sam build`, then a zip per function and dist/ballast.yaml,
# the template with the SAM transform applied (service-managed StackSets
# refuse transforms) and its code in S3 (ArtifactBucket); linted and checked.
package: sam-build
	@bash scripts/package.sh

# The steps above, in this order, with `sam build` alongside at the lowest
# CPU priority (scripts/test.sh says why).
test: venv tools awscli
	@CARGO=$(CARGO) bash scripts/test.sh

# One debug build of the demo and the function binaries it runs (the fat-LTO
# release profile is for the Lambda artifacts; a debug build is minutes
# faster and runs the demo as well), then the demo.
demo: venv
	$(CARGO) build --locked --bins -p ballast-tests $(addprefix -p ,$(FUNCTIONS))
	$(TARGET_DIR)/debug/demo

# Cold start, memory, size and an event storm, beside a Python boto3
# baseline; prints figures (BENCHMARKS.md). BALLAST_BENCH_RUNS=10 by default.
bench: venv bench-venv release
	$(CARGO) run --quiet --locked -p ballast-tests --bin bench

# Coverage-guided fuzzing of the event parsers and dispatch (nightly,
# cargo-fuzz; installed on first use). FUZZ_SECONDS=300 by default.
fuzz:
	@bash scripts/fuzz.sh

# Size of each release binary and of its Lambda zip (bootstrap, zip -9).
size: release
	@bash scripts/size.sh $(FUNCTIONS)

clean:
	$(CARGO) clean
	rm -rf .aws-sam .venv-checkov dist
