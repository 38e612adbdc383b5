#!/usr/bin/env bash
# holdfast end to end on a fresh Debian machine:
#   install MariaDB tooling, build holdfast, start two throwaway MariaDB servers, load sample
#   data into the first, back it up, list, verify and drill the backup (restored into a
#   throwaway server and proven), write more and make an
#   accident (DELETE of a table), archive the binlog, ask `holdfast status` whether we are
#   covered, recover into the second server to just
#   before the accident, and prove it holds the data the first had at that moment (CHECKSUM
#   TABLE). Then the same in the background: `holdfast daemon` on a generated config runs a
#   scheduled backup of the first server by itself; its /metrics and job list are shown, an
#   admin user and an API token are made, the API and the web console answer, and it is
#   stopped with SIGTERM. Prints PASS or FAIL and exits non-zero on FAIL.
#
# Usage: scripts/quickstart.sh
# Environment:
#   HOLDFAST  use this holdfast binary instead of building target/release/holdfast
#   KEEP=1    keep the work directory (repository, datadirs, logs) after the run
#   HOLD=N    keep the daemon running N seconds before stopping it, to try the web console
# Needs a Rust toolchain (https://rustup.rs); apt packages are installed when missing.
set -Eeuo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PATH="$PATH:/usr/sbin:/usr/local/sbin:/sbin"
# Only what the demo runs: the server and its client. (scripts/test.sh installs the rest: the
# backup tool, the peer tools of the benchmarks, Garage for the S3 tests.)
PACKAGES=(mariadb-server mariadb-client)
KEEP=${KEEP:-0}

if [[ -t 1 ]]; then BOLD=$'\033[1m' RED=$'\033[1;31m' GREEN=$'\033[1;32m' RESET=$'\033[0m'
else BOLD='' RED='' GREEN='' RESET=''; fi
STEP=0
step() { STEP=$((STEP + 1)); printf '\n%s==== step %d: %s%s\n' "$BOLD" "$STEP" "$*" "$RESET"; }
info() { echo "  $*"; }
die() { printf '\n%sFAIL%s: %s\n' "$RED" "$RESET" "$*" >&2; exit 1; }

# ------------------------------------------------------------------ 1. packages
step "apt packages (${PACKAGES[*]})"
missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  SUDO=()
  if [[ $EUID -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 || die "missing packages ${missing[*]}; run as root or install them with apt-get"
    SUDO=(sudo)
  fi
  info "installing ${missing[*]}"
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  info "all installed"
fi
for cmd in mariadbd mariadb-install-db mariadb mariadb-admin; do
  command -v "$cmd" >/dev/null || die "$cmd not found after installing ${PACKAGES[*]}"
done
info "$(mariadbd --version)"

# ------------------------------------------------------------------ 2. build
if [[ -n ${HOLDFAST:-} ]]; then
  step "holdfast binary (HOLDFAST=$HOLDFAST, not building)"
else
  step "cargo build --release -p holdfast-cli"
  command -v cargo >/dev/null || die "cargo not found: install a Rust toolchain from https://rustup.rs"
  (cd "$ROOT" && cargo build --release -p holdfast-cli)
  HOLDFAST="${CARGO_TARGET_DIR:-$ROOT/target}/release/holdfast"
fi
[[ -x $HOLDFAST ]] || die "holdfast binary $HOLDFAST not found or not executable"
holdfast() { (set -x; "$HOLDFAST" "$@"); }

# ------------------------------------------------------------------ 3. servers
step "two throwaway MariaDB servers"
# Under /tmp, not $TMPDIR: Unix socket paths must stay short.
WORK=$(mktemp -d /tmp/holdfast-quickstart.XXXXXX)
declare -a SERVER_PIDS=()
DAEMON_PID=
cleanup() {
  local rc=$?
  trap - EXIT
  local pid
  if [[ -n $DAEMON_PID ]]; then
    kill "$DAEMON_PID" 2>/dev/null || true
    wait "$DAEMON_PID" 2>/dev/null || true
  fi
  for pid in "${SERVER_PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${SERVER_PIDS[@]}"; do
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [[ $KEEP == 1 ]]; then
    echo "kept $WORK"
  else
    rm -rf "$WORK"
    ((rc == 0)) || echo "(run with KEEP=1 to keep $WORK for inspection)"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

USER_ARGS=()
[[ $EUID -eq 0 ]] && USER_ARGS=(--user=root)

# start_server N: initialises $WORK/sN and starts mariadbd on socket $WORK/sN/mysqld.sock.
# Sockets only (--skip-networking): no TCP port to collide with anything on this machine.
start_server() {
  local n=$1 dir=$WORK/s$1
  mkdir -p "$dir/tmp"
  mariadb-install-db --no-defaults --datadir="$dir/data" --auth-root-authentication-method=normal \
    --skip-test-db --user="$(id -un)" >"$dir/install-db.log" 2>&1 \
    || { tail -20 "$dir/install-db.log" >&2; die "mariadb-install-db failed for server $n"; }
  mariadbd --no-defaults "${USER_ARGS[@]}" --datadir="$dir/data" --socket="$dir/mysqld.sock" \
    --skip-networking --server-id="$n" --log-bin=mysql-bin --binlog-format=ROW \
    --log-error="$dir/error.log" --pid-file="$dir/mariadbd.pid" --tmpdir="$dir/tmp" \
    --innodb-buffer-pool-size=256M --max-allowed-packet=1G --local-infile=1 --secure-file-priv= \
    --character-set-server=utf8mb4 --collation-server=utf8mb4_general_ci \
    >>"$dir/error.log" 2>&1 &
  local pid=$!
  SERVER_PIDS+=("$pid")
  for _ in $(seq 1 600); do
    if mariadb-admin --no-defaults --socket="$dir/mysqld.sock" -uroot ping >/dev/null 2>&1; then
      info "server $n: pid $pid, socket $dir/mysqld.sock"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || { tail -20 "$dir/error.log" >&2; die "mariadbd $n exited during startup"; }
    sleep 0.1
  done
  tail -20 "$dir/error.log" >&2
  die "mariadbd $n not ready after 60 s"
}
start_server 1
start_server 2
SOCK1=$WORK/s1/mysqld.sock
SOCK2=$WORK/s2/mysqld.sock
sql1() { mariadb --no-defaults --default-character-set=utf8mb4 -uroot --socket="$SOCK1" -N -B "$@"; }
sql2() { mariadb --no-defaults --default-character-set=utf8mb4 -uroot --socket="$SOCK2" -N -B "$@"; }

# ------------------------------------------------------------------ 4. sample data
step "sample data on server 1"
# Varied on purpose (mariadb-dump | mariadb fails this comparison: it prints FLOATs with 6
# significant digits and loses bits of products.weight_kg): unicode, tabs/newlines/backslashes and the strings 'NULL' and '\N', NULLs,
# binary, JSON, ENUM/SET/BIT, temporal types, a generated column, foreign keys, a table without
# any key, a MyISAM table, an empty table, a view, a procedure, a function, and a trigger that
# would double the order totals if a restore created it before loading the rows.
sql1 <<'SQL' || die "loading the sample data failed"
CREATE DATABASE shop CHARACTER SET utf8mb4;
USE shop;
CREATE TABLE customers (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  name VARCHAR(100) NOT NULL,
  email VARCHAR(190) NOT NULL UNIQUE,
  country CHAR(2) NOT NULL,
  balance DECIMAL(12,2) NOT NULL DEFAULT 0,
  active TINYINT(1) NOT NULL DEFAULT 1,
  signed_up DATETIME NOT NULL,
  notes TEXT NULL,
  KEY (country)
) ENGINE=InnoDB;
INSERT INTO customers (id, name, email, country, balance, active, signed_up, notes)
SELECT seq,
       CONCAT(ELT(1 + seq % 6, 'Ana', 'Björn', 'Chloé', 'Dmitri', '李小龙', 'Zoë'), ' #', seq),
       CONCAT('user', seq, '@example.com'),
       ELT(1 + seq % 5, 'DE', 'FR', 'JP', 'US', 'BR'),
       ROUND((seq * 7919 % 100000) / 100, 2),
       seq % 7 <> 0,
       '2020-01-01 00:00:00' + INTERVAL seq * 3607 SECOND,
       CASE seq % 10 WHEN 0 THEN NULL WHEN 1 THEN 'NULL' WHEN 2 THEN '\\N'
            WHEN 3 THEN CONCAT('tab\there, newline\nthere, backslash \\ and "quotes" \'', seq)
            ELSE CONCAT('note ', seq) END
FROM seq_1_to_2000;

CREATE TABLE products (
  id INT UNSIGNED NOT NULL PRIMARY KEY,
  sku CHAR(12) NOT NULL UNIQUE,
  title VARCHAR(200) NOT NULL,
  price DECIMAL(10,2) NOT NULL,
  weight_kg FLOAT NULL,
  attrs JSON NULL,
  thumbnail BLOB NULL,
  created_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
) ENGINE=InnoDB;
INSERT INTO products (id, sku, title, price, weight_kg, attrs, thumbnail, created_at)
SELECT seq, CONCAT('SKU-', LPAD(seq, 8, '0')),
       CONCAT('Product ', seq, ' – ', ELT(1 + seq % 3, 'red', 'grün', '青')),
       ROUND(1 + (seq * 37 % 50000) / 100, 2),
       IF(seq % 5 = 0, NULL, seq / 13),
       JSON_OBJECT('color', ELT(1 + seq % 3, 'red', 'green', 'blue'), 'size', seq % 10,
                   'tags', JSON_ARRAY('a', seq)),
       IF(seq % 3 = 0, NULL, UNHEX(REPEAT(SHA2(seq, 256), 4))),
       '2021-06-01 12:00:00' + INTERVAL seq * 1000001 MICROSECOND
FROM seq_1_to_500;

CREATE TABLE orders (
  id BIGINT UNSIGNED NOT NULL PRIMARY KEY,
  customer_id INT UNSIGNED NOT NULL,
  status ENUM('new', 'paid', 'shipped', 'cancelled') NOT NULL DEFAULT 'new',
  ordered_at DATETIME(3) NOT NULL,
  total DECIMAL(12,2) NOT NULL DEFAULT 0,
  CONSTRAINT fk_orders_customer FOREIGN KEY (customer_id) REFERENCES customers (id)
) ENGINE=InnoDB;
CREATE TABLE order_items (
  order_id BIGINT UNSIGNED NOT NULL,
  line SMALLINT UNSIGNED NOT NULL,
  product_id INT UNSIGNED NOT NULL,
  qty INT NOT NULL,
  unit_price DECIMAL(10,2) NOT NULL,
  line_total DECIMAL(12,2) AS (qty * unit_price) STORED,
  PRIMARY KEY (order_id, line),
  CONSTRAINT fk_items_order FOREIGN KEY (order_id) REFERENCES orders (id) ON DELETE CASCADE,
  CONSTRAINT fk_items_product FOREIGN KEY (product_id) REFERENCES products (id)
) ENGINE=InnoDB;
CREATE TRIGGER order_items_after_insert AFTER INSERT ON order_items FOR EACH ROW
  UPDATE orders SET total = total + NEW.qty * NEW.unit_price WHERE id = NEW.order_id;
INSERT INTO orders (id, customer_id, status, ordered_at)
SELECT seq, 1 + seq * 7 % 2000, ELT(1 + seq % 4, 'new', 'paid', 'shipped', 'cancelled'),
       '2023-01-01 00:00:00.000' + INTERVAL seq * 611123 MICROSECOND
FROM seq_1_to_3000;
INSERT INTO order_items (order_id, line, product_id, qty, unit_price)
SELECT o.seq, l.seq, p.id, 1 + (o.seq + l.seq) % 5, p.price
FROM seq_1_to_3000 o
JOIN seq_1_to_3 l ON l.seq <= 1 + o.seq % 3
JOIN products p ON p.id = 1 + (o.seq * 31 + l.seq * 17) % 500;

CREATE VIEW customer_totals AS
  SELECT c.id, c.name, COUNT(o.id) AS orders, COALESCE(SUM(o.total), 0) AS spent
  FROM customers c LEFT JOIN orders o ON o.customer_id = c.id
  GROUP BY c.id, c.name;
DELIMITER //
CREATE PROCEDURE top_customers(IN n INT)
BEGIN
  SELECT id, name, spent FROM customer_totals ORDER BY spent DESC, id LIMIT n;
END//
CREATE FUNCTION order_count(cid INT UNSIGNED) RETURNS INT READS SQL DATA
  RETURN (SELECT COUNT(*) FROM orders WHERE customer_id = cid)//
DELIMITER ;

CREATE DATABASE blog CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
USE blog;
CREATE TABLE posts (
  id INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  slug VARCHAR(100) NOT NULL UNIQUE,
  title VARCHAR(255) NOT NULL,
  body MEDIUMTEXT NOT NULL,
  tags SET('rust', 'mysql', 'backup', 'ops') NOT NULL DEFAULT '',
  published DATE NULL,
  FULLTEXT KEY (title, body)
) ENGINE=InnoDB;
INSERT INTO posts (id, slug, title, body, tags, published)
SELECT seq, CONCAT('post-', seq), CONCAT('Post ', seq, ': ünïcödé 🚀'),
       REPEAT(CONCAT('Lorem ipsum ', seq, ' — dolor\tsit\namet \\ ', '\n'), 1 + seq % 20),
       ELT(1 + seq % 5, '', 'rust', 'mysql,backup', 'ops', 'rust,mysql,backup,ops'),
       IF(seq % 9 = 0, NULL, '2019-01-01' + INTERVAL seq DAY)
FROM seq_1_to_1000;
-- No primary or unique key at all.
CREATE TABLE comments (
  post_id INT NOT NULL,
  author VARCHAR(64) NULL,
  body TEXT NOT NULL,
  created DATETIME NOT NULL
) ENGINE=InnoDB;
INSERT INTO comments
SELECT 1 + seq % 1000, IF(seq % 6 = 0, NULL, CONCAT('reader', seq % 97)),
       CONCAT('Comment ', seq, IF(seq % 4 = 0, ' with a\ttab', '')),
       '2024-02-29 12:00:00' + INTERVAL seq MINUTE
FROM seq_1_to_1500;
-- Non-transactional engine; unique key but no primary key.
CREATE TABLE page_views (
  day DATE NOT NULL,
  path VARCHAR(200) NOT NULL,
  views BIGINT UNSIGNED NOT NULL,
  UNIQUE KEY (day, path)
) ENGINE=MyISAM;
INSERT INTO page_views
SELECT '2024-01-01' + INTERVAL seq % 365 DAY, CONCAT('/post-', seq DIV 365), seq * 12345
FROM seq_0_to_1999;

CREATE DATABASE metrics;
USE metrics;
CREATE TABLE readings (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  sensor SMALLINT UNSIGNED NOT NULL,
  taken_at DATETIME(6) NOT NULL,
  value DOUBLE NOT NULL,
  quality TINYINT NULL,
  flags BIT(8) NOT NULL DEFAULT b'0',
  period YEAR NULL,
  duration TIME(3) NULL,
  raw VARBINARY(16) NULL,
  KEY (sensor, taken_at)
) ENGINE=InnoDB;
INSERT INTO readings (sensor, taken_at, value, quality, flags, period, duration, raw)
SELECT seq % 17, '2024-01-01 00:00:00' + INTERVAL seq * 1500007 MICROSECOND,
       SIN(seq) * 1e6 / (1 + seq % 7), IF(seq % 11 = 0, NULL, CAST(seq AS SIGNED) % 100 - 50), seq % 256,
       IF(seq % 8 = 0, NULL, 1990 + seq % 40), SEC_TO_TIME(CAST(seq AS SIGNED) % 90000 - 45000),
       IF(seq % 5 = 0, NULL, UNHEX(LPAD(HEX(seq * 2654435761), 16, '0')))
FROM seq_1_to_5000;
CREATE TABLE empty_table (id INT NOT NULL PRIMARY KEY, label VARCHAR(10)) ENGINE=InnoDB;
SQL
USER_TABLES_SQL="SELECT CONCAT(TABLE_SCHEMA, '.', TABLE_NAME) FROM information_schema.TABLES
  WHERE TABLE_TYPE = 'BASE TABLE'
    AND TABLE_SCHEMA NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys')
  ORDER BY TABLE_SCHEMA, TABLE_NAME"
mapfile -t TABLES < <(sql1 -e "$USER_TABLES_SQL")
for t in "${TABLES[@]}"; do
  info "$(printf '%-22s %6s rows' "$t" "$(sql1 -e "SELECT COUNT(*) FROM $t")")"
done
info "plus view shop.customer_totals, procedure shop.top_customers, function shop.order_count,"
info "trigger shop.order_items_after_insert"

# ------------------------------------------------------------------ 5. holdfast
REPO="file://$WORK/repo"
step "holdfast init"
holdfast init --repo "$REPO" || die "holdfast init failed"
step "holdfast backup (server 1)"
holdfast backup --repo "$REPO" --source "mysql://root@localhost/?socket=$SOCK1" || die "holdfast backup failed"
step "holdfast list"
holdfast list --repo "$REPO" || die "holdfast list failed"
step "holdfast verify"
holdfast verify --repo "$REPO" latest || die "holdfast verify failed"
step "holdfast drill latest: restore the backup into a throwaway server and prove it"
holdfast drill --repo "$REPO" latest || die "holdfast drill failed"

# The checksum of one table (MariaDB 10.11's CHECKSUM TABLE is not reliable for tables with
# generated columns: the result changes with whichever table was opened before; for those,
# checksum a temporary plain copy).
checksum() { # checksum SQL-FUNCTION db.table
  local sql=$1 t=$2 db=${2%%.*}
  if [[ -n $($sql -e "SELECT 1 FROM information_schema.COLUMNS WHERE CONCAT(TABLE_SCHEMA, '.', TABLE_NAME) = '$t'
                      AND IS_GENERATED <> 'NEVER' LIMIT 1") ]]; then
    $sql -e "CREATE TEMPORARY TABLE $db.quickstart_copy ENGINE=InnoDB AS SELECT * FROM $t;
             CHECKSUM TABLE $db.quickstart_copy" | cut -f2
  else
    $sql -e "CHECKSUM TABLE $t" | cut -f2
  fi
}

step "more work on server 1 after the backup, then an accident (DELETE of every order item)"
sql1 -e "UPDATE shop.products SET price = price * 1.05 WHERE id % 3 = 0;
         INSERT INTO shop.customers (name, email, country, signed_up) VALUES ('Late Customer', 'late@example.com', 'NO', NOW());" \
  || die "writes on server 1 failed"
declare -A BEFORE
for t in "${TABLES[@]}"; do BEFORE[$t]=$(checksum sql1 "$t"); done
sql1 -e "DELETE FROM shop.order_items" || die "the accident failed"
ACCIDENT=$(sql1 -e "SELECT @@gtid_binlog_pos")
info "the accident is transaction $ACCIDENT"
step "holdfast binlog stream --until-caught-up (archive server 1's binlog)"
holdfast binlog stream --repo "$REPO" --source "mysql://root@localhost/?socket=$SOCK1" --until-caught-up \
  || die "holdfast binlog stream failed"
holdfast binlog list --repo "$REPO" || die "holdfast binlog list failed"
holdfast info --repo "$REPO" || die "holdfast info failed"
step "holdfast status: are we covered? (exit 21 here: the demo's stream ran once, none runs now)"
rc=0
holdfast status --repo "$REPO" || rc=$?
((rc == 0 || rc == 21)) || die "holdfast status failed (exit $rc)"
step "holdfast restore (into server 2) --before-gtid $ACCIDENT --verify: point-in-time recovery"
holdfast restore --repo "$REPO" --target "mysql://root@localhost/?socket=$SOCK2" --before-gtid "$ACCIDENT" \
  --verify || die "holdfast restore failed"

# ------------------------------------------------------------------ 6. compare
step "compare server 2 with server 1 as it was just before the accident (*)"
failures=0
mapfile -t TABLES2 < <(sql2 -e "$USER_TABLES_SQL")
if [[ "${TABLES[*]}" != "${TABLES2[*]}" ]]; then
  info "DIFF table lists: source has [${TABLES[*]}], target has [${TABLES2[*]}]"
  failures=$((failures + 1))
fi
printf '  %-24s %-12s %-12s %s\n' TABLE "SERVER 1*" "SERVER 2" ""
for t in "${TABLES[@]}"; do
  c1=${BEFORE[$t]}
  c2=$(checksum sql2 "$t" 2>/dev/null || true)
  if [[ -n $c1 && $c1 == "$c2" ]]; then verdict=ok; else verdict=DIFF; failures=$((failures + 1)); fi
  printf '  %-24s %-12s %-12s %s\n' "$t" "$c1" "${c2:-missing}" "$verdict"
done
# Views, routines and triggers must have come back too.
OBJECTS_SQL="SELECT CONCAT('view ', TABLE_SCHEMA, '.', TABLE_NAME) FROM information_schema.VIEWS
             WHERE TABLE_SCHEMA NOT IN ('mysql', 'sys')
  UNION ALL SELECT CONCAT(LOWER(ROUTINE_TYPE), ' ', ROUTINE_SCHEMA, '.', ROUTINE_NAME)
             FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA NOT IN ('mysql', 'sys')
  UNION ALL SELECT CONCAT('trigger ', TRIGGER_SCHEMA, '.', TRIGGER_NAME) FROM information_schema.TRIGGERS
             WHERE TRIGGER_SCHEMA NOT IN ('mysql', 'sys')
  ORDER BY 1"
objects1=$(sql1 -e "$OBJECTS_SQL")
objects2=$(sql2 -e "$OBJECTS_SQL")
while read -r obj; do
  if grep -qxF "$obj" <<<"$objects2"; then verdict=ok; else verdict=MISSING; failures=$((failures + 1)); fi
  printf '  %-50s %s\n' "$obj" "$verdict"
done <<<"$objects1"
# The view and routines work on the restored server, with the same results.
for q in "SELECT COUNT(*), SUM(spent) FROM shop.customer_totals" "SELECT shop.order_count(7)"; do
  r1=$(sql1 -e "$q") r2=$(sql2 -e "$q" 2>&1 || true)
  if [[ $r1 == "$r2" ]]; then verdict=ok; else verdict=DIFF; failures=$((failures + 1)); fi
  printf '  %-50s %s\n' "$q" "$verdict"
done

((failures == 0)) || die "$failures difference(s) between server 1 and the restored server 2"

# ------------------------------------------------------------------ 7. the daemon
step "holdfast daemon: the same by itself (a generated config, a backup every 10 seconds)"
# A free loopback port for /metrics.
PORT=
for p in $(seq 19187 19287); do
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then PORT=$p; break; fi
done
[[ -n $PORT ]] || die "no free port in 19187-19287 for the daemon's /metrics"
CONFIG=$WORK/holdfast.toml
cat >"$CONFIG" <<TOML
[daemon]
listen = "127.0.0.1:$PORT"
state = "$WORK/state.db"
shutdown_grace = "30s"

[[repository]]
name = "demo"
url = "$REPO"

[[server]]
name = "db1"
source = "mysql://root@localhost/?socket=$SOCK1"
repository = "demo"

[[server.schedule]]
job = "backup"
cron = "*/10 * * * * *"    # sec min hour day month weekday: every 10 seconds, for the demo
TOML
sed 's/^/  | /' "$CONFIG"
holdfast daemon --check-config --config "$CONFIG" --next 2 || die "the generated config does not validate"
info "starting: holdfast daemon --config $CONFIG (log: $WORK/daemon.log)"
"$HOLDFAST" daemon --config "$CONFIG" >"$WORK/daemon.log" 2>&1 &
DAEMON_PID=$!
# http_get PATH [HEADER]: the body of http://127.0.0.1:$PORT/PATH (bash's /dev/tcp; no curl
# needed), with one more request header if given (an API token).
http_get() {
  local response extra=${2:+$2$'\r\n'}
  response=$( (exec 3<>"/dev/tcp/127.0.0.1/$PORT" \
    && printf 'GET %s HTTP/1.0\r\nHost: localhost\r\n%s\r\n' "$1" "$extra" >&3 && cat <&3) 2>/dev/null) || return 1
  [[ $response == "HTTP/1."?" 200"* ]] || return 1
  printf '%s\n' "${response#*$'\r\n\r\n'}"
}
for _ in $(seq 1 300); do
  http_get /readyz >/dev/null && break
  kill -0 "$DAEMON_PID" 2>/dev/null || { tail -20 "$WORK/daemon.log" >&2; die "the daemon exited"; }
  sleep 0.1
done
http_get /readyz >/dev/null || { tail -20 "$WORK/daemon.log" >&2; die "the daemon is not ready after 30 s"; }
info "ready on 127.0.0.1:$PORT; waiting for the scheduled backup"
for _ in $(seq 1 60); do
  "$HOLDFAST" daemon --config "$CONFIG" --jobs | grep -q ' succeeded ' && break
  sleep 1
done
step "holdfast daemon --jobs: the job list (from the daemon's job store)"
holdfast daemon --config "$CONFIG" --jobs || die "holdfast daemon --jobs failed"
"$HOLDFAST" daemon --config "$CONFIG" --jobs | grep -q ' succeeded ' \
  || { tail -20 "$WORK/daemon.log" >&2; die "no scheduled backup succeeded within 60 s"; }
step "GET /metrics (a selection; refreshed every 30 s and when a job ends)"
metrics=
for _ in $(seq 1 50); do
  metrics=$(http_get /metrics) || die "GET /metrics failed"
  grep -q '^holdfast_jobs{state="succeeded"} [1-9]' <<<"$metrics" && break
  sleep 0.2
done
grep -E '^holdfast_(up|jobs|backup_last_success_timestamp_seconds|backup_size_bytes|backups|repository_size_bytes|schedule_jitter_seconds_count|job_duration_seconds_count)[ {]' \
  <<<"$metrics" | sed 's/^/  /'
grep -q '^holdfast_jobs{state="succeeded"} [1-9]' <<<"$metrics" || die "/metrics shows no succeeded job"
grep -q '^holdfast_backup_last_success_timestamp_seconds{server="db1",repository="demo"' <<<"$metrics" \
  || die "/metrics shows no backup of db1"
step "the API and the web console: an admin user, an API token, GET /api/v1/servers, the console"
CONSOLE_PASSWORD=demo-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
# The password as two lines on stdin (a terminal would be asked twice, without echo).
printf '%s\n%s\n' "$CONSOLE_PASSWORD" "$CONSOLE_PASSWORD" \
  | "$HOLDFAST" user add demo --role admin --config "$CONFIG" >/dev/null || die "holdfast user add failed"
info "holdfast user add demo --role admin: done"
TOKEN=$("$HOLDFAST" token create --user demo --expires 1d --config "$CONFIG" | tail -1)
[[ $TOKEN == hf_* ]] || die "holdfast token create printed no token"
info "holdfast token create --user demo --expires 1d: ${TOKEN:0:16}… (shown once; stored hashed)"
servers=$(http_get /api/v1/servers "Authorization: Bearer $TOKEN") || die "GET /api/v1/servers failed"
info "GET /api/v1/servers: ${servers:0:240}…"
grep -q '"name":"db1"' <<<"$servers" || die "the API does not list db1"
http_get /api/v1/servers >/dev/null && die "the API answered without credentials"
info "GET /api/v1/servers without a token: refused (401)"
http_get / | grep -q '<title>' || die "the console page is not served at /"
info "the console: ${BOLD}http://127.0.0.1:$PORT/${RESET}  (user demo, password $CONSOLE_PASSWORD)"
if [[ ${HOLD:-0} -gt 0 ]]; then
  info "HOLD=$HOLD: the daemon keeps running for $HOLD s; open the console now"
  sleep "$HOLD"
fi

step "stop the daemon (SIGTERM: no new jobs, running ones finish, exit 0)"
kill -TERM "$DAEMON_PID"
rc=0
wait "$DAEMON_PID" || rc=$?
DAEMON_PID=
((rc == 0)) || { tail -20 "$WORK/daemon.log" >&2; die "the daemon exited with $rc"; }
grep -E 'holdfast daemon (started|stopped)|queued|job succeeded' "$WORK/daemon.log" | tail -6 | sed 's/^/  log: /'
holdfast list --repo "$REPO" || die "holdfast list failed"

printf '\n%sPASS%s: server 1 recovered into server 2 to just before the accident (backup + archived binlog); %d tables identical (CHECKSUM TABLE), views, routines and triggers present; the daemon ran a scheduled backup by itself, served its API and console, and stopped cleanly\n' \
  "$GREEN" "$RESET" "${#TABLES[@]}"
