# Ballast — the two everyday commands:
#   make demo   run the failure stories against a local AWS emulator (no AWS account)
#   make test   fmt check, clippy -D warnings, template and security checks, release build,
#               the whole test suite, and `sam build` of the control plane (arm64)
# Everything they need (moto, cfn-lint, SAM CLI, cargo-lambda, Zig; pinned) is
# installed into .venv on first use.

FUNCTIONS := unhealthy-target rds-failover az-impairment
CARGO     ?= cargo

.PHONY: test demo bench fuzz venv release fmt lint template security sam-build size clean

venv:
	@bash scripts/venv.sh

release:
	$(CARGO) build --release --locked $(addprefix -p ,$(FUNCTIONS))

fmt:
	$(CARGO) fmt --all -- --check

lint:
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

# cfn-lint on both templates and `sam validate --lint`.
template: venv
	@bash scripts/template-check.sh

# checkov on template.yaml (its own venv: .venv-checkov).
security:
	@bash scripts/security-check.sh

# `sam build` of template.yaml: an arm64 bootstrap per function, timed.
sam-build: venv
	@bash scripts/sam-build.sh

# The steps above, in this order, with `sam build` alongside at the lowest
# CPU priority (scripts/test.sh says why).
test: venv
	@CARGO=$(CARGO) bash scripts/test.sh

demo: venv release
	$(CARGO) run --quiet --locked -p ballast-tests --bin demo

# Cold start, memory, size and an event storm, beside a Python boto3
# baseline; prints figures (BENCHMARKS.md). BALLAST_BENCH_RUNS=10 by default.
bench: venv release
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
	rm -rf .aws-sam .venv-checkov
