#!/usr/bin/env bash
# What recording every message in the audit trail costs (issue 15): release binaries of this
# checkout (`cargo build --release -p portcullis -p portcullis-tools` first), a production-like
# config (`loadgen gen-config --auth`: signed logons, so `audit.on_full = "fail_closed"`),
# gateway spinning on CPU 0, loadgen on CPU 1, ROUNDS interleaved rounds of `[audit] messages =
# false` / `true` (the default), each on a fresh data folder, 10 s after 2 s of warm-up.
# LOAD="--rate 10000" (the default) is the open loop; LOAD="--closed-loop --window 16"
# saturates. Prints each run's percentiles (µs) and rate, the gateway's own latency quantiles
# (ops port, seconds), and from the trail's `gateway-stop` record the orders the gateway
# refused and the trail records lost. COLD=1 adds `gateway.cold_cpus = [1]` (the cold threads
# off the hot core, sharing the loadgen's). Needs curl.
set -euo pipefail
B=${B:-$(cd "$(dirname "$0")/../.." && pwd)/target/release}
ROUNDS=${ROUNDS:-3}
D=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$D"' EXIT
run() {
    local name=$1 messages=$2
    rm -rf "$D/data"
    "$B/loadgen" gen-config --auth --cpu 0 --flush-interval-ms 0 --listen 127.0.0.1:29878 \
        --data-dir "$D/data" > "$D/cfg.toml"
    if [ -n "${COLD:-}" ]; then
        sed -i "s/^cpu = 0$/cpu = 0\ncold_cpus = [$COLD]/" "$D/cfg.toml"
    fi
    printf '\n[audit]\nmessages = %s\n' "$messages" >> "$D/cfg.toml"
    printf '\n[ops]\naddress = "127.0.0.1:29880"\nplaintext = true\nmetrics_public = true\n' \
        >> "$D/cfg.toml"
    "$B/portcullis" keys --config "$D/cfg.toml" add load --allow 127.0.0.1/32 \
        --secret-out "$D/load.secret" --comp-id LOAD > /dev/null
    "$B/portcullis" run --config "$D/cfg.toml" > "$D/$name.gw.log" 2>&1 &
    local gw=$!
    sleep 3
    "$B/loadgen" fix --connect 127.0.0.1:29878 --sender LOAD --target PORTCULLIS --key-id load \
        --secret-file "$D/load.secret" --cpu 1 ${LOAD:---rate 10000} --duration-s 10 --warmup-s 2 \
        > "$D/$name.txt" 2>&1 || true
    # The gateway's own view (wire in → first answer out, the hot thread's clock): what a
    # client on another machine sees, without this box's loadgen sharing a core with the
    # cold threads.
    curl -s http://127.0.0.1:29880/metrics | grep '^portcullis_order_latency_seconds{' |
        sed 's/.*quantile="\([^"]*\)"} \(.*\)/\1:\2/' | tr '\n' ' ' > "$D/$name.inside" || true
    kill -INT "$gw"
    wait "$gw" || true
    grep -h '"kind":"gateway-stop"' "$D"/data/audit/trail-*.jsonl | tail -1 |
        grep -o '"audit_records_lost":"[0-9]*"\|"orders_rejected":"[0-9]*"' | tr '\n' ' ' \
        > "$D/$name.stop" || true
    find "$D/data/audit" -name 'trail-*.jsonl' -exec cat {} + | wc -l > "$D/$name.records"
}
for r in $(seq 1 "$ROUNDS"); do
    run "off$r" false
    run "on$r" true
done
echo "run      p50        p90        p99      p99.9     p99.99        max   (µs)"
for f in "$D"/off*.txt "$D"/on*.txt; do
    n=$(basename "$f" .txt)
    printf '%-6s %s   %s  %s records: %s\n' "$n" "$(sed -n 4p "$f")" \
        "$(sed -n 2p "$f" | grep -o 'achieved [0-9.]*/s')" "$(cat "$D/$n.stop")" \
        "$(cat "$D/$n.records")"
    printf '       in-gateway (s): %s\n' "$(cat "$D/$n.inside")"
done
