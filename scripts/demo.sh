#!/usr/bin/env bash
# The main job: a CRM and an ERP kept in sync through the hub over a real
# NATS JetStream server (started here on a free port with a temporary store,
# fsync on every write, and stopped at the end).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo build --release --bin mdhub
# The current nats-server that install-deps.sh put in pip's scripts dir,
# else the first on PATH.
nats_server="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/nats-server"
[ -x "$nats_server" ] || nats_server=$(command -v nats-server)
dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$dir/nats.conf" <<CONF
listen: 127.0.0.1:$port
jetstream { store_dir: "$dir/js", sync_interval: always }
CONF
"$nats_server" -c "$dir/nats.conf" > "$dir/nats.log" 2>&1 &
nats_pid=$!
trap 'kill $nats_pid 2>/dev/null; wait $nats_pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 1 100); do
  (echo > /dev/tcp/127.0.0.1/$port) 2>/dev/null && break
  sleep 0.1
done
echo "nats-server $("$nats_server" --version | sed 's/.* //') on 127.0.0.1:$port"
RUST_LOG=${RUST_LOG:-warn} target/release/mdhub demo --nats "nats://127.0.0.1:$port"
