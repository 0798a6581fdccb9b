#!/usr/bin/env bash
# The one test command (README, CI). Formatting, lints, then every test:
# unit, integration (real TLS over loopback, the real binary), CLI.
#
# It installs what the tests need when it is missing (openssl for the TLS
# non-feature tests, redis-server and redis-cli for the Redis store tests,
# which start private servers on free ports, PostgreSQL for the API-key store
# tests (scripts/test-postgres.sh: an existing server, or a private one),
# cargo-nextest) and fails loudly rather than skipping.
# Set CARGO_TARGET_DIR to reuse a build directory between runs.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n==> %s\n' "$*"; }

apt_install() {
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "error: $1 is missing and apt-get is not available to install it" >&2
        exit 1
    fi
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq || true
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@"
}

say "checking tools"
command -v cargo >/dev/null || { echo "error: cargo (the Rust toolchain) is required" >&2; exit 1; }
command -v openssl >/dev/null || apt_install openssl
command -v redis-server >/dev/null || apt_install redis-server
command -v redis-cli >/dev/null || apt_install redis-tools
redis-server --version >/dev/null || { echo "error: redis-server does not run" >&2; exit 1; }
if ! cargo nextest --version >/dev/null 2>&1; then
    say "installing cargo-nextest"
    cargo install --locked cargo-nextest
fi

say "checking PostgreSQL (API-key store tests)"
# shellcheck source=scripts/test-postgres.sh
source scripts/test-postgres.sh
echo "PostgreSQL for the tests: ${RAMPART_TEST_POSTGRES_URL##*@}"

say "cargo fmt --check"
cargo fmt --all -- --check

say "cargo clippy (-D warnings)"
cargo clippy --workspace --all-targets --locked -- -D warnings

say "cargo nextest run"
cargo nextest run --workspace --locked --profile "${NEXTEST_PROFILE:-default}"

say "fuzz smoke run: the request validator (fuzz/)"
# cargo-fuzz needs a nightly toolchain. Where there is none, the property
# test validate::tests::the_validator_never_panics (run above) stands in.
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
        say "installing cargo-fuzz"
        cargo install --locked cargo-fuzz
    fi
    (
        cd fuzz
        export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-../target}/fuzz"
        # New inputs go to a scratch corpus; the seeds in corpus/validate
        # (kept in the tree, crash inputs among them) are read only.
        work=$(mktemp -d)
        trap 'rm -rf "$work"' EXIT
        cargo +nightly fuzz run --sanitizer none validate "$work" corpus/validate -- \
            -max_total_time="${FUZZ_SECONDS:-20}" -rss_limit_mb=2048 -timeout=5
    )
else
    echo "no nightly toolchain here: cargo-fuzz cannot run; the proptest stand-in ran with the tests"
fi
