# Targets stay short; logic lives in scripts (cross/, .ci/).
CARGO ?= cargo
SIM_SEED ?=

.PHONY: all build check test lint fmt fmt-check purity sim demo bench size clean

all: build

build:
	$(CARGO) build --release

## check: everything CI runs (format, lints, tests, purity)
check: fmt-check lint test purity

test:
	$(CARGO) test --all-targets

lint:
	$(CARGO) clippy --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

fmt-check:
	$(CARGO) fmt --all -- --check

## purity: pure modules must not read clocks, touch files/sockets/processes or use HashMap
purity:
	@sh cross/purity.sh

## demo: the real engine on a simulated line and router, live timeline + wanctl-demo.svg
demo:
	$(CARGO) run --release --quiet -- demo

## sim: the simulator's scenario table (SIM_SEED=N replays one seed)
sim:
	$(CARGO) run --profile sim --quiet -- sim $(if $(SIM_SEED),--seed $(SIM_SEED),--seed 1 --seed 2 --seed 3)

## bench: figures (CPU, RSS, tick lateness, probes) of the release binary; WANCTL_BENCH_SECS=30
bench:
	@command -v fping >/dev/null 2>&1 || (apt-get install -y -qq fping >/dev/null 2>&1 || echo "fping not installable: the bench will skip its comparison")
	$(CARGO) build --release
	$(CARGO) test --release --test integration bench_ -- --ignored --nocapture --test-threads=1

size:
	$(CARGO) build --release
	@ls -l target/release/wanctl | awk '{ printf "wanctl release binary: %d bytes\n", $$5 }'

clean:
	$(CARGO) clean
