# Shared by the bench scripts: `source "$BENCH_DIR/lib.sh"` after setting WORK and declaring
# PIDS (the processes the script's cleanup kills) and a `die` function.

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_garage BUCKET: a single-node Garage under $WORK/garage with one bucket and random keys,
# exported as AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_DEFAULT_REGION for holdfast and the
# AWS CLI (never on argv). Sets S3_PORT; waits until the S3 port answers.
start_garage() {
  local bucket=$1
  command -v garage >/dev/null || die "garage missing (scripts/ensure-garage.sh installs it)"
  S3_PORT=$(free_port)
  local rpc_port; rpc_port=$(free_port)
  mkdir -p "$WORK/garage"
  cat >"$WORK/garage/garage.toml" <<TOML
metadata_dir = "$WORK/garage/meta"
data_dir = "$WORK/garage/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$rpc_port"
rpc_public_addr = "127.0.0.1:$rpc_port"
rpc_secret = "$(python3 -c 'import secrets; print(secrets.token_hex(32))')"
[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$S3_PORT"
root_domain = ".s3.garage.localhost"
TOML
  export AWS_ACCESS_KEY_ID="GK$(python3 -c 'import secrets; print(secrets.token_hex(12))')"
  export AWS_SECRET_ACCESS_KEY="$(python3 -c 'import secrets; print(secrets.token_hex(32))')"
  export AWS_DEFAULT_REGION=garage
  GARAGE_DEFAULT_ACCESS_KEY=$AWS_ACCESS_KEY_ID GARAGE_DEFAULT_SECRET_KEY=$AWS_SECRET_ACCESS_KEY \
    GARAGE_DEFAULT_BUCKET=$bucket RUST_LOG=garage=warn \
    garage -c "$WORK/garage/garage.toml" server --single-node --default-bucket >"$WORK/garage/log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 1 600); do (echo >"/dev/tcp/127.0.0.1/$S3_PORT") 2>/dev/null && break; sleep 0.1; done
  (echo >"/dev/tcp/127.0.0.1/$S3_PORT") 2>/dev/null || die "garage did not start ($WORK/garage/log)"
}
