#!/usr/bin/env bash
# Makes sure the `garage` binary (an S3-compatible object store) is installed: the storage tests
# start a private Garage server per test (crates/testkit/src/garage.rs) and fail without it.
# Installs it with `cargo install --locked garage` into ~/.cargo/bin when missing, where it stays
# cached between runs. Its build uses its own target directory (GARAGE_TARGET_DIR, default
# ~/.cache/holdfast/garage-target), never the project's.
#
# Usage: scripts/ensure-garage.sh   (sourced or run; exits non-zero if it cannot install)
set -Eeuo pipefail
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
GARAGE_VERSION=${GARAGE_VERSION:-2.5.0}
if command -v garage >/dev/null 2>&1; then
  echo "garage present: $(garage --version 2>/dev/null | head -1)"
  exit 0
fi
command -v cargo >/dev/null 2>&1 || { echo "ensure-garage: cargo not found; install a Rust toolchain" >&2; exit 1; }
target=${GARAGE_TARGET_DIR:-$HOME/.cache/holdfast/garage-target}
echo "installing garage $GARAGE_VERSION with cargo install (once; cached in ~/.cargo/bin, takes a while)"
CARGO_TARGET_DIR=$target cargo install --locked --version "$GARAGE_VERSION" garage
garage --version | head -1
