#!/usr/bin/env bash
# Instructions the gateway thread executes per order, counted by callgrind (deterministic: the
# figure does not move with the box's load, unlike wall-clock time).
#
#   tools/peers/instructions.sh            # FIX, `ack` venue (one ExecutionReport per order)
#   VENUE=fill ORDERS=5000 tools/peers/instructions.sh
#   PROTO=sbe tools/peers/instructions.sh  # the same orders over SBE/FIXP
#   CONFIG=$'[audit]\nmessages = false' TOGGLE=portcullis::engine::Engine::do_work \
#       tools/peers/instructions.sh        # a config change, the whole duty cycle
#
# What runs: the release gateway (`target/release/portcullis`, build it first with
# `cargo build --release -p portcullis -p portcullis-tools`) under
# `valgrind --tool=callgrind --toggle-collect=<the engine's input function>` in blocking mode
# (so the idle spin is not counted), on a `loadgen gen-config` config, and `loadgen fix
# --closed-loop` sending ORDERS orders with a window of 1. Everything the hot thread does for an
# order inside the engine's input handling is counted: framing, decode, validation, session,
# throttle, risk, the simulated venue, the journal and store appends, the report's encode. The
# socket syscalls and the cold threads are not.
#
# Prints the total and the count per order; tuning.md's "user-space work" quotes it.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=$ROOT/target/release
ORDERS=${ORDERS:-3000}
VENUE=${VENUE:-ack}
PROTO=${PROTO:-fix}
PORT=${PORT:-19878}
TOGGLE=${TOGGLE:-portcullis::engine::Engine::process_input}

for b in portcullis loadgen; do
    [[ -x $BIN/$b ]] || {
        echo "no $BIN/$b: cargo build --release -p portcullis -p portcullis-tools" >&2
        exit 2
    }
done
command -v valgrind >/dev/null || {
    echo "valgrind is not installed (apt-get install -y valgrind)" >&2
    exit 2
}

OUT=$(mktemp -d "${TMPDIR:-/tmp}/portcullis-instr.XXXXXX")
gw=
cleanup() {
    if [[ -n $gw ]]; then
        kill "$gw" 2>/dev/null || true
        wait "$gw" 2>/dev/null || true
    fi
    rm -rf "$OUT"
}
trap cleanup EXIT

proto=()
extra=()
if [[ $PROTO == sbe ]]; then
    proto=(--sbe)
    extra=(--auth)
fi
"$BIN/loadgen" gen-config --blocking --venue "$VENUE" --flush-interval-ms 0 \
    --max-orders $((ORDERS * 2 + 1000)) --listen "127.0.0.1:$PORT" \
    --data-dir "$OUT/data" "${extra[@]}" "${proto[@]}" >"$OUT/gw.toml" 2>/dev/null || {
    # gen-config may not take --sbe/--auth: say so rather than measure something else.
    echo "loadgen gen-config refused: ${extra[*]} ${proto[*]}" >&2
    exit 2
}
# CONFIG: TOML appended to the generated config (e.g. $'[audit]\nmessages = false').
[[ -z ${CONFIG:-} ]] || printf '\n%s\n' "$CONFIG" >>"$OUT/gw.toml"
signed=()
if [[ $PROTO == sbe ]]; then
    "$BIN/portcullis" keys --config "$OUT/gw.toml" add load --allow 127.0.0.1/32 \
        --secret-out "$OUT/secret" --comp-id LOAD >/dev/null
    signed=(--key-id load --secret-file "$OUT/secret")
fi

valgrind --tool=callgrind --callgrind-out-file="$OUT/cg.out" --toggle-collect="$TOGGLE" \
    "$BIN/portcullis" run --config "$OUT/gw.toml" >"$OUT/gw.log" 2>&1 &
gw=$!
connect=127.0.0.1:$PORT
if [[ $PROTO == sbe ]]; then
    connect=$(grep -A3 'protocol = "sbe"' "$OUT/gw.toml" | grep -o '127.0.0.1:[0-9]*' | head -1 || true)
    [[ -n $connect ]] || connect=127.0.0.1:$PORT
fi
# The gateway starts slowly under valgrind: wait for its listener.
for _ in $(seq 1 600); do
    if (exec 3<>"/dev/tcp/${connect%:*}/${connect#*:}") 2>/dev/null; then break; fi
    sleep 0.1
done
"$BIN/loadgen" fix --connect "$connect" "${proto[@]}" "${signed[@]}" --closed-loop --window 1 \
    --max-orders "$ORDERS" --duration-s 600 >"$OUT/load.log" 2>&1 || {
    echo "loadgen failed:" >&2
    tail -20 "$OUT/load.log" >&2
    exit 1
}
kill -INT "$gw"
wait "$gw" || true
gw=
total=$(callgrind_annotate "$OUT/cg.out" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }' || true)
echo "proto=$PROTO venue=$VENUE orders=$ORDERS; loadgen said:"
head -3 "$OUT/load.log" | sed 's/^/  /'
echo "instructions in $TOGGLE: $total"
awk -v t="$total" -v n="$ORDERS" 'BEGIN { printf "per order: %.0f\n", t / n }'
