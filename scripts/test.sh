#!/usr/bin/env bash
# Run every check CI runs: formatting, clippy (warnings are errors), the monitoring files in
# contrib/ (scripts/check-monitoring.sh), then all unit and integration tests. Integration tests
# start real throwaway `mariadbd` servers, MySQL 5.7 `mysqld` servers and Garage S3 servers
# (crates/testkit), so all three must be installed; missing
# apt packages are installed with apt-get when possible, garage with cargo install (cached in
# ~/.cargo/bin), MySQL with scripts/install-mysql.sh (cached in ~/.cache/holdfast).
#
# Usage: scripts/test.sh [extra args for cargo nextest run / cargo test]
# The console's browser tests drive Debian's headless Chromium through chromedriver (installed
# here too); they fail, never skip, without them.
# Environment: TEST_THREADS [2]  tests run at once (each may start one or more servers)
set -Eeuo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export PATH="$PATH:/usr/sbin:/usr/local/sbin:/sbin"
TEST_THREADS=${TEST_THREADS:-2}

banner() { printf '\n==> %s\n' "$*"; }
die() { echo "test.sh: $*" >&2; exit 1; }

# ------------------------------------------------------------------ packages
# command:package pairs; tests need the server binaries, some also the backup tools.
ensure_packages() {
  local -a pkgs=()
  local pair cmd pkg
  for pair in mariadbd:mariadb-server mariadb-install-db:mariadb-server mariadb:mariadb-client \
              mariadb-admin:mariadb-client mariabackup:mariadb-backup mydumper:mydumper \
              sysbench:sysbench zstd:zstd age:age age-keygen:age \
              groff:groff-base man:man-db chromium:chromium chromedriver:chromium-driver; do
    cmd=${pair%%:*} pkg=${pair#*:}
    if ! command -v "$cmd" >/dev/null 2>&1 && [[ " ${pkgs[*]} " != *" $pkg "* ]]; then pkgs+=("$pkg"); fi
  done
  [[ -x /usr/bin/time ]] || pkgs+=(time)
  # The daemon's job store tests run a throwaway PostgreSQL (Debian keeps its binaries off $PATH).
  compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || command -v initdb >/dev/null 2>&1 \
    || pkgs+=(postgresql)
  ((${#pkgs[@]} == 0)) && return 0

  local -a sudo=()
  if [[ $EUID -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null \
      || die "missing packages: ${pkgs[*]}; install them with: sudo apt-get install ${pkgs[*]}"
    sudo=(sudo -n)
  fi
  command -v apt-get >/dev/null 2>&1 || die "missing packages: ${pkgs[*]} and no apt-get; install them by hand"
  banner "installing ${pkgs[*]}"
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}"
}
ensure_packages

command -v cargo >/dev/null 2>&1 || die "cargo not found: install a Rust toolchain (https://rustup.rs)"

# The storage suite runs against a real S3-compatible server (Garage), never skipped.
banner "garage (S3-compatible server for the storage tests)"
bash "$ROOT/scripts/ensure-garage.sh" || die "could not install garage; the storage tests need it"
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

# The MySQL-flavor tests run a real MySQL 5.7 server (crates/testkit), never skipped.
banner "mysql 5.7 (for the MySQL-flavor tests)"
bash "$ROOT/scripts/install-mysql.sh" || die "could not install MySQL 5.7; the MySQL tests need it"

# ------------------------------------------------------------------ checks
banner "cargo fmt --all -- --check"
FMT_ARGS=(--check)
[[ -t 1 ]] || FMT_ARGS+=(--color never) # plain diffs in CI logs
cargo fmt --all -- "${FMT_ARGS[@]}"

banner "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

# Prometheus rules (promtool check + unit tests) and the Grafana dashboard's queries.
banner "scripts/check-monitoring.sh"
bash "$ROOT/scripts/check-monitoring.sh"

if cargo nextest --version >/dev/null 2>&1; then
  banner "cargo nextest run --workspace --no-fail-fast --test-threads $TEST_THREADS"
  cargo nextest run --workspace --no-fail-fast --test-threads "$TEST_THREADS" "$@"
  # nextest does not run doctests.
  banner "cargo test --workspace --doc"
  cargo test --workspace --doc
else
  banner "cargo-nextest not found; cargo test --workspace --no-fail-fast (--test-threads $TEST_THREADS)"
  cargo test --workspace --no-fail-fast "$@" -- --test-threads "$TEST_THREADS"
fi

banner "all checks passed"
