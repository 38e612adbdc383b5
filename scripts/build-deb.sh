#!/usr/bin/env bash
# Build the Debian package of holdfast and check what is in it.
#
#   1. installs cargo-deb if missing (`cargo install cargo-deb --locked`, into ~/.cargo/bin);
#   2. builds the release binary;
#   3. writes the man pages (`holdfast manpages`, gzipped) and the bash, zsh and fish completion scripts
#      (`holdfast completions`) from that binary into <target>/release/deb-assets/;
#   4. packages with cargo-deb ([package.metadata.deb] in crates/cli/Cargo.toml);
#   5. checks the .deb: control fields, conffile, maintainer scripts, every file that must be in
#      it (binary, systemd unit, config, one man page per command, completions), that the
#      packaged binary runs and its bash completion parses, and `systemd-analyze verify` on the
#      packaged unit (when systemd-analyze is installed).
#
# Usage: scripts/build-deb.sh            prints the path of the .deb on its last line
# Environment: CARGO_TARGET_DIR as for cargo; BUILD_DEB_SKIP_BUILD=1 packages the binary already
#              built (e.g. right after a release build);
#              BUILD_DEB_PROFILE [release]: the cargo profile to build and package. `release`
#              for a package to ship; CI checks the packaging with `dev`, the binary the tests
#              already built (see docs/daemon.md, "The Debian package").
set -Eeuo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export PATH="$HOME/.cargo/bin:$PATH:/usr/sbin:/sbin"

banner() { printf '\n==> %s\n' "$*"; }
die() { echo "build-deb.sh: $*" >&2; exit 1; }
SECONDS=0

command -v cargo >/dev/null 2>&1 || die "cargo not found: install a Rust toolchain (https://rustup.rs)"
command -v dpkg-deb >/dev/null 2>&1 || die "dpkg-deb not found: run this on Debian or Ubuntu (apt-get install dpkg)"

# Pinned, so CI is reproducible (3.x packages a non-release profile with a warning; see
# BUILD_DEB_PROFILE). Installed once into ~/.cargo/bin, which CI caches like garage.
CARGO_DEB_VERSION=3.8.0
if ! cargo deb --version >/dev/null 2>&1; then
  banner "installing cargo-deb $CARGO_DEB_VERSION (cargo install cargo-deb --locked)"
  nice cargo install cargo-deb --version "$CARGO_DEB_VERSION" --locked
fi
cargo deb --version

TARGET_DIR=$(cargo metadata --format-version 1 --no-deps \
  | grep -o '"target_directory":"[^"]*"' | head -1 | cut -d'"' -f4)
[[ -n $TARGET_DIR ]] || die "cannot find cargo's target directory (cargo metadata)"
PROFILE=${BUILD_DEB_PROFILE:-release}
case $PROFILE in
  dev | test) PROFILE_DIR=debug ;;
  *) PROFILE_DIR=$PROFILE ;;
esac
BIN="$TARGET_DIR/$PROFILE_DIR/holdfast"

if [[ ${BUILD_DEB_SKIP_BUILD:-0} != 1 ]]; then
  banner "cargo build --profile $PROFILE"
  nice cargo build --profile "$PROFILE" --locked -p holdfast-cli
fi
[[ -x $BIN ]] || die "$BIN does not exist: build it (cargo build --profile $PROFILE -p holdfast-cli)"

banner "man pages and completions from $BIN"
ASSETS="$TARGET_DIR/$PROFILE_DIR/deb-assets"
rm -rf "$ASSETS"
mkdir -p "$ASSETS/completions"
"$BIN" manpages "$ASSETS/man" >"$ASSETS/man.list"
# cargo-deb compresses man pages only when they are not build outputs; these are.
gzip -9n "$ASSETS"/man/*.1
"$BIN" completions bash >"$ASSETS/completions/holdfast.bash"
"$BIN" completions zsh >"$ASSETS/completions/_holdfast"
"$BIN" completions fish >"$ASSETS/completions/holdfast.fish"
pages=$(wc -l <"$ASSETS/man.list")
((pages > 1)) || die "holdfast manpages wrote $pages pages"
echo "$pages man pages, 3 completion scripts"

banner "cargo deb"
DEB_ARGS=(-p holdfast-cli --no-build --locked --profile "$PROFILE")
# A check build (not release) is never shipped: compress fast.
[[ $PROFILE == release ]] || DEB_ARGS+=(--fast)
out=$(cargo deb "${DEB_ARGS[@]}" 2>&1) || { echo "$out" >&2; die "cargo deb failed"; }
echo "$out"
DEB=$(echo "$out" | grep -E '\.deb$' | tail -1)
[[ -f $DEB ]] || die "cargo deb printed no .deb path"

# ------------------------------------------------------------------ checks
banner "checking $DEB"
problems=()
info=$(dpkg-deb -I "$DEB")
contents=$(dpkg-deb -c "$DEB" | awk '{print $6}' | sed 's#^\./#/#')
has_file() { grep -qxF "$1" <<<"$contents" || problems+=("missing in the package: $1"); }
has_field() { grep -qE "$1" <<<"$info" || problems+=("control: no line matching /$1/"); }

has_field '^ Package: holdfast$'
has_field '^ Depends: .*adduser'
has_field '^ Section: admin$'
for script in postinst postrm prerm conffiles; do
  has_field "^ +[0-9]+ bytes, +[0-9]+ lines +\*? *$script"
done
conffiles=$(dpkg-deb --ctrl-tarfile "$DEB" | tar -xO ./conffiles 2>/dev/null || true)
grep -qxF /etc/holdfast/holdfast.toml <<<"$conffiles" \
  || problems+=("conffiles does not list /etc/holdfast/holdfast.toml (has: ${conffiles:-nothing})")

has_file /usr/bin/holdfast
unit=$(grep -E '^/(usr/)?lib/systemd/system/holdfast\.service$' <<<"$contents" || true)
[[ -n $unit ]] || problems+=("missing in the package: lib/systemd/system/holdfast.service")
has_file /etc/holdfast/holdfast.toml
has_file /usr/share/bash-completion/completions/holdfast
has_file /usr/share/zsh/vendor-completions/_holdfast
has_file /usr/share/fish/vendor_completions.d/holdfast.fish
while read -r page; do
  has_file "/usr/share/man/man1/$(basename "$page").gz"
done <"$ASSETS/man.list"
for must in holdfast holdfast-backup holdfast-restore holdfast-completions; do
  has_file "/usr/share/man/man1/$must.1.gz"
done

# The packaged files themselves: the binary runs, the completion parses, the unit verifies.
X=$(mktemp -d)
trap 'rm -rf "$X"' EXIT
dpkg-deb -x "$DEB" "$X"
version=$("$X/usr/bin/holdfast" --version) || problems+=("the packaged binary does not run")
echo "packaged binary: $version"
bash -n "$X/usr/share/bash-completion/completions/holdfast" \
  || problems+=("the bash completion script does not parse")
zcat "$X/usr/share/man/man1/holdfast.1.gz" | grep -q '^\.TH' \
  || problems+=("holdfast.1.gz is not a man page")
# The config is only for root and the daemon's group (it names credential files).
mode=$(stat -c %a "$X/etc/holdfast/holdfast.toml")
[[ $mode == 640 ]] || problems+=("/etc/holdfast/holdfast.toml has mode $mode, not 640")
if [[ -n $unit ]]; then
  if command -v systemd-analyze >/dev/null 2>&1; then
    # Verify the unit as packaged, pointing ExecStart at the extracted binary and man at the
    # extracted pages (verify checks that both exist).
    mkdir -p "$X/verify"
    sed "s#/usr/bin/holdfast#$X/usr/bin/holdfast#g" "$X$unit" >"$X/verify/holdfast.service"
    if MANPATH="$X/usr/share/man" systemd-analyze verify "$X/verify/holdfast.service"; then
      echo "systemd-analyze verify: ok"
      systemd-analyze security --offline=yes "$X/verify/holdfast.service" 2>/dev/null \
        | grep -F 'Overall exposure level' || true
    else
      problems+=("systemd-analyze verify rejects the unit")
    fi
  else
    echo "systemd-analyze not installed: the unit is not verified"
  fi
fi

if ((${#problems[@]})); then
  printf '  - %s\n' "${problems[@]}" >&2
  die "${#problems[@]} problem(s) with $DEB"
fi
size=$(stat -c %s "$DEB")
echo "ok: $(grep -c . <<<"$contents") entries, $((size / 1024)) KiB, ${SECONDS}s"
echo "$DEB"
