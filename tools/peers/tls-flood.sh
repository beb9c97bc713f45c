#!/usr/bin/env bash
# A TLS handshake flood against an established TLS session's latency (issue 13, tuning.md
# "TLS listeners", handshake budget). Needs the release binaries (cargo build --release
# --bin portcullis --bin loadgen) and openssl.
#
#   tools/peers/tls-flood.sh [ROUNDS]      # default 2
#
# Each round runs, in turn, gateway.tls_handshake_budget_us = 100 (the default) and 1000 (no
# bound), each without and with the flood: one `loadgen fix --tls` session at RATE orders/s
# (default 2000) for DUR s (default 10) after 2 s of warm-up, while FLOODERS (default 2) flood
# processes handshake with the same TLS listener: FLOOD=sclient (default; `openssl s_client`
# in a loop, ≈ 25 handshakes/s each) or FLOOD=stime (`openssl s_time -new`, as fast as the box
# allows). GWMODE=" " runs the gateway busy-polling (default --blocking). Prints one line per
# run: p50 … max (µs) and the handshakes the flood completed (s_client mode; s_time writes
# its own summary into hs-*). Files land in OUT (default a new
# folder under target/tls-flood).
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
GW=$ROOT/target/release/portcullis
LG=$ROOT/target/release/loadgen
ROUNDS=${1:-2}
RATE=${RATE:-2000}
DUR=${DUR:-10}
FLOOD=${FLOOD:-sclient}
M=${OUT:-$ROOT/target/tls-flood/$(date -u +%Y%m%dT%H%M%S)}
mkdir -p "$M"
if [ ! -f "$M/server.pem" ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$M/ca.key" \
    -out "$M/ca.pem" -days 30 -subj "/CN=flood CA" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$M/server.key" \
    -out "$M/server.csr" -subj "/CN=localhost" 2>/dev/null
  printf "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n" > "$M/ext.cnf"
  openssl x509 -req -in "$M/server.csr" -CA "$M/ca.pem" -CAkey "$M/ca.key" -CAcreateserial \
    -out "$M/server.pem" -days 30 -extfile "$M/ext.cnf" 2>/dev/null
fi
flood_pids=()
start_flood() { # tag
  for i in $(seq 1 "${FLOODERS:-2}"); do
    if [ "$FLOOD" = stime ]; then
      openssl s_time -connect 127.0.0.1:19879 -new -time $((DUR + 5)) > "$M/hs-$1.$i" 2>&1 &
    else
      ( while true; do
          openssl s_client -connect 127.0.0.1:19879 -CAfile "$M/ca.pem" -servername localhost \
            </dev/null 2>/dev/null | grep -q 'Verify return code: 0' && echo -n . >> "$M/hs-$1.$i"
        done ) &
    fi
    flood_pids+=($!)
  done
}
stop_flood() {
  for p in "${flood_pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  flood_pids=()
}
one() { # budget flood round
  local budget=$1 flood=$2 round=$3 tag="b$1-$2-r$3"
  rm -rf "$M/data-$tag" "$M"/hs-"$tag".*
  # shellcheck disable=SC2086
  $LG gen-config --sessions 1 --listen 127.0.0.1:19878 ${GWMODE:---blocking} \
    | sed -e "/^tls_handshake_budget_us/d" \
      -e "s/^max_connections = .*/max_connections = 1024\ntls_handshake_budget_us = $budget/" \
    > "$M/gw-$tag.toml"
  printf '\n[[listener]]\naddress = "127.0.0.1:19879"\ntls = { cert = "%s", key = "%s" }\n' \
    "$M/server.pem" "$M/server.key" >> "$M/gw-$tag.toml"
  # shellcheck disable=SC2086
  $GW run --config "$M/gw-$tag.toml" --data-dir "$M/data-$tag" ${GWMODE:---blocking} \
    > "$M/gw-$tag.log" 2>&1 &
  local gw=$!
  sleep 1.5
  [ "$flood" = flood ] && start_flood "$tag" && sleep 1
  $LG fix --connect 127.0.0.1:19879 --tls --ca "$M/ca.pem" --server-name localhost \
    --target PORTCULLIS --reset --rate "$RATE" --duration-s "$DUR" --warmup-s 2 \
    --json "$M/$tag.json" > "$M/$tag.txt" 2>&1
  [ "$flood" = flood ] && stop_flood
  kill -INT $gw; wait $gw 2>/dev/null
  echo "$tag $(grep -A1 ' p50 ' "$M/$tag.txt" | tail -1) | handshakes=$(cat "$M"/hs-"$tag".* 2>/dev/null | wc -c)"
}
echo "p50 p90 p99 p99.9 p99.99 max (µs); files in $M"
for r in $(seq 1 "$ROUNDS"); do
  for b in 100 1000; do
    one $b none "$r"
    one $b flood "$r"
  done
done
