# Ballast — the two everyday commands:
#   make demo   run the failure stories against a local AWS emulator (no AWS account)
#   make test   fmt check, clippy -D warnings, release build, the whole test suite
# Everything they need (moto, pinned) is installed into .venv on first use.

FUNCTIONS := unhealthy-target rds-failover az-impairment
CARGO     ?= cargo

.PHONY: test demo venv release fmt lint size clean

venv:
	@bash scripts/venv.sh

release:
	$(CARGO) build --release --locked $(addprefix -p ,$(FUNCTIONS))

fmt:
	$(CARGO) fmt --all -- --check

lint:
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

test: venv fmt lint release
	$(CARGO) nextest run --workspace --locked

demo: venv release
	$(CARGO) run --quiet --locked -p ballast-tests --bin demo

# Size of each release binary and of its Lambda zip (bootstrap, zip -9).
size: release
	@bash scripts/size.sh $(FUNCTIONS)

clean:
	$(CARGO) clean
