# Targets stay short; logic lives in scripts (cross/, .ci/).
CARGO ?= cargo
SIM_SEED ?=
# cross/dist/packages: one Rust target triple or several (default: all five shipped targets).
TARGET ?= x86_64-unknown-linux-musl aarch64-unknown-linux-musl armv7-unknown-linux-musleabihf \
	mipsel-unknown-linux-musl mips-unknown-linux-musl
# install: GNU-style; BINARY= installs a given file (e.g. from dist/) instead of building.
PREFIX ?= /usr/local
DESTDIR ?=
BINARY ?=

.PHONY: all build check test-deps test lint fmt fmt-check purity sim demo bench fuzz soak size cross cross-test bloat dist packages install clean

all: build

build:
	$(CARGO) build --release

## check: everything CI runs (tools the tests need, format, lints, tests, purity)
check: test-deps fmt-check lint test purity

## test-deps: install (as root) or check what the tests need (cross/test-deps.sh)
test-deps:
	@sh cross/test-deps.sh

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

## fuzz: every outside-input parser, FUZZ_SECS per target (default 60), release build; prints executions and findings
FUZZ_SECS ?= 60
fuzz:
	FUZZ_SECS=$(FUZZ_SECS) $(CARGO) test --release --test integration -- --ignored --nocapture --test-threads=1 fuzz_parsers_long

## soak: the release daemon for SOAK_SECS (default 3600) on the closed loop with faults and SIGHUPs
SOAK_SECS ?= 3600
soak:
	$(CARGO) build --release
	SOAK_SECS=$(SOAK_SECS) $(CARGO) test --release --test integration -- --ignored --nocapture --test-threads=1 soak_

## size: the host's release binary (not shipped), with and without TLS; shipped sizes: make cross
size:
	@CARGO="$(CARGO)" sh cross/size.sh

## cross: static musl binaries checked under qemu (TARGET=triple; cross/README.md)
cross:
	bash cross/build.sh $(TARGET)

## cross-test: the library's unit tests for TARGET under qemu (minutes per target)
cross-test:
	bash cross/build.sh --test $(TARGET)

## bloat: bytes per crate of each TARGET's release binary (an unstripped build in target/cross-bloat)
bloat:
	bash cross/build.sh --bloat $(TARGET)

## packages: .deb, OpenWrt .ipk, Alpine .apk per TARGET in dist/, reproducible (cross/README.md)
packages: cross
	bash cross/package.sh $(TARGET)

## dist: cross binaries as dist/wanctl-<version>-<target> plus .sha256 files, and the packages
dist: cross
	sh cross/dist.sh $(TARGET)
	bash cross/package.sh $(TARGET)

## install: binary, links, example configs, units, init scripts (PREFIX, DESTDIR, BINARY)
install:
	$(if $(BINARY),,$(CARGO) build --release)
	sh cross/install.sh "$(DESTDIR)" "$(PREFIX)" "$(if $(BINARY),$(BINARY),target/release/wanctl)"

clean:
	$(CARGO) clean
