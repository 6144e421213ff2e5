#!/bin/sh
# make test-deps: installs (as root) or checks (otherwise) what the test suite needs, so
# `make check` passes on a fresh machine. Idempotent: installs only what is missing.
#   ip (iproute2)              network namespaces, veth and TUN for the integration tests
#   chromium                   the status page rendered headless (tests/status_page.rs)
#   python3 prometheus_client  /metrics parsed by the reference parser (tests/health.rs)
#   clippy, rustfmt            make lint / make fmt-check
# A test whose tool is missing fails; WANCTL_TEST_ALLOW_SKIP=1 skips such tests on purpose.
set -eu

missing_apt=""
command -v ip >/dev/null 2>&1 || missing_apt="$missing_apt iproute2"
[ -x /usr/bin/chromium ] || [ -x /usr/bin/chromium-browser ] || missing_apt="$missing_apt chromium"
need_pip=0
python3 -c "import prometheus_client" 2>/dev/null || need_pip=1
need_rustup=0
{ cargo clippy --version >/dev/null 2>&1 && cargo fmt --version >/dev/null 2>&1; } || need_rustup=1

if [ -z "$missing_apt" ] && [ "$need_pip" = 0 ] && [ "$need_rustup" = 0 ]; then
    echo "test-deps: everything the tests need is installed"
    exit 0
fi

if [ "$need_rustup" = 1 ]; then
    echo "test-deps: adding clippy and rustfmt (rustup)"
    rustup component add clippy rustfmt
fi

if [ "$(id -u)" != 0 ]; then
    [ -n "$missing_apt" ] && echo "test-deps: missing Debian packages:$missing_apt (run 'make test-deps' as root, or apt-get install them)" >&2
    [ "$need_pip" = 1 ] && echo "test-deps: missing python3 module prometheus_client (python3 -m pip install prometheus_client)" >&2
    echo "test-deps: not root: cannot install; the tests that need these will fail (WANCTL_TEST_ALLOW_SKIP=1 skips them), and the namespace tests skip without root" >&2
    exit 0
fi

if [ -n "$missing_apt" ]; then
    echo "test-deps: installing$missing_apt"
    apt-get -o DPkg::Lock::Timeout=600 update -qq
    # shellcheck disable=SC2086 # a list of package names
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends $missing_apt >/dev/null
fi
if [ "$need_pip" = 1 ]; then
    echo "test-deps: installing prometheus_client"
    python3 -m pip install -q prometheus_client 2>/dev/null \
        || python3 -m pip install -q --break-system-packages prometheus_client
fi
echo "test-deps: done"
