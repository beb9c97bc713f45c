#!/usr/bin/env bash
# Peers side by side (PERF-1, PERF-2): one command that builds the release binaries, drives each
# system in turn with the same loadgen settings, and prints one table with the gateway's
# percentiles as multiples of the TCP echo floors and of QuickFIX.
#
#   tools/peers/compare.sh                       # floors, gateway (flush 0 / default), QuickFIX
#   tools/peers/compare.sh --sessions 1,100,1000 # the gateway at 1, 100, 1000 sessions
#   tools/peers/compare.sh --codec               # also the codec bench against fefix
#   tools/peers/compare.sh --knobs               # the gateway: pinned or not, busy-poll or
#                                                # blocking, hot set on or off, flush 0 or 1 s
#                                                # (tuning.md)
#   tools/peers/compare.sh --keys 100000         # also: signed Logon with 100k keys in the store
#                                                # against signed with only the load key
#   tools/peers/compare.sh --rounds 3            # the whole sequence 3 times, interleaved
#
# Rounds (--rounds N, default 1): stalls on a shared or virtual box drift over minutes, so one
# pass measures each system at a different moment. With N > 1 the whole sequence runs N times
# (round 1: floor-a, floor-b, gateway, …, quickfix-file; round 2: the same; …), each run's files
# suffixed by its round (gateway.r2.json). The table's rows are then the median over the rounds
# of each percentile, a ratio row is the median of the ratios taken within each round (both
# systems measured minutes apart at most), and the "per round" lines give the key ratios of
# every round (p50 and p99.9 against floor-a, p99 against quickfix and quickfix-file) so their
# spread shows. `loadgen table --help` documents the statistics; the plot shows round 1.
#
# Systems, each on CPU 0 (--server-cpu), loadgen on CPU 1 (--client-cpu), open loop at --rate:
#   floor-a          loadgen echo-server --mode spin: non-blocking read of one socket, spinning
#   floor-b          loadgen echo-server --mode mio: the same driven by epoll with a zero timeout
#   gateway          portcullis, busy-poll, pinned, flush_interval_ms = 0, simulated venue `ack`
#                    (one ExecutionReport per order, as QuickFIX answers; `fill` would add the
#                    fill's report to the same write)
#   gateway-flush1s  the same with the default flush_interval_ms = 1000
#   gateway-sbe      the gateway row over binary order entry: SBE over a FIXP session
#                    (`loadgen fix --sbe`, a `protocol = "sbe"` listener; Negotiate and
#                    Establish signed with the load key, so [auth] is on — it costs nothing per
#                    order), flush_interval_ms = 0, simulated venue `ack`. --no-sbe skips it
#   gateway-nospin   (--knobs) gateway with spin_read_conns = 0: every read waits for epoll
#   gateway-signed   (--keys N) gateway with [auth]: the load key only, signed Logon
#   gateway-keysN    (--keys N) the same with N more keys in the store (`keys generate`)
#   quickfix         tools/peers quickfix-acceptor (QuickFIX C++), busy-polling, memory store
#   quickfix-file    the same with QuickFIX's file store (--store file, under --out: the
#                    gateway's file system): like the gateway's journal, every message is
#                    written to a file (QuickFIX fflushes each, no fsync; the gateway at
#                    flush_interval_ms = 0 does not fdatasync either). Our gateway journals
#                    every order, QuickFIX's memory store does not: both rows make the fair
#                    comparison. --quickfix-store memory|file|both (default both) picks them
# Echo messages are --size bytes (default 160, about one of loadgen's NewOrderSingle).
#
# Everything lands in --out (default target/compare/<UTC time>): per run .txt/.json/.hgrm and
# .timeline.csv (per 10 ms: orders, max, p50; stall episodes are in the .txt/.json), the
# servers' logs, compare.svg (all runs on one percentile plot) and table.txt. Needs cmake and a
# C++ compiler for QuickFIX (--no-quickfix skips it). On a shared box every figure is noisy:
# nothing else should run, and p99.9/max measure the machine as much as the program.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
RATE=10000
DURATION=10
WARMUP=2
SIZE=160
SESSIONS=""
CLIENT_CPU=1
SERVER_CPU=0
GW_PORT=19878
QF_PORT=19880
BUILD=1
QUICKFIX=1
CODEC=0
KNOBS=0
KEYS=0
ROUNDS=1
QF_STORE=both
SBE=1
OUT=""

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
    cat <<EOF
Options: --rate N (orders/s, default $RATE)  --duration-s S ($DURATION)  --warmup-s S ($WARMUP)
  --size BYTES ($SIZE)  --sessions LIST (scale mode, e.g. 1,100,1000)  --client-cpu N ($CLIENT_CPU)
  --server-cpu N ($SERVER_CPU)  --gateway-port P ($GW_PORT)  --quickfix-port P ($QF_PORT)
  --out DIR  --no-build  --no-quickfix  --codec  --knobs  --keys N (extra rows, see above)
  --rounds N ($ROUNDS, interleaved; see above)  --quickfix-store memory|file|both ($QF_STORE)
  --no-sbe (no gateway-sbe row)
EOF
}

die() {
    echo "compare.sh: $*" >&2
    exit 2
}

while (($#)); do
    case $1 in
    --rate) RATE=${2:?}; shift ;;
    --duration-s) DURATION=${2:?}; shift ;;
    --warmup-s) WARMUP=${2:?}; shift ;;
    --size) SIZE=${2:?}; shift ;;
    --sessions) SESSIONS=${2:?}; shift ;;
    --client-cpu) CLIENT_CPU=${2:?}; shift ;;
    --server-cpu) SERVER_CPU=${2:?}; shift ;;
    --gateway-port) GW_PORT=${2:?}; shift ;;
    --quickfix-port) QF_PORT=${2:?}; shift ;;
    --out) OUT=${2:?}; shift ;;
    --no-build) BUILD=0 ;;
    --no-quickfix) QUICKFIX=0 ;;
    --no-sbe) SBE=0 ;;
    --codec) CODEC=1 ;;
    --knobs) KNOBS=1 ;;
    --keys) KEYS=${2:?}; shift ;;
    --rounds) ROUNDS=${2:?}; shift ;;
    --quickfix-store) QF_STORE=${2:?}; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown option $1" ;;
    esac
    shift
done
[[ $SESSIONS =~ ^[0-9]+(,[0-9]+)*$ || -z $SESSIONS ]] || die "--sessions wants a list like 1,100,1000"
[[ $KEYS =~ ^[0-9]+$ ]] || die "--keys wants a number of keys"
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "--rounds wants a number of rounds, 1 or more"
[[ $QF_STORE =~ ^(memory|file|both)$ ]] || die "--quickfix-store wants memory, file or both"

OUT=${OUT:-$ROOT/target/compare/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
BIN=$ROOT/target/release

if ((BUILD)); then
    echo "== building release binaries (nice -n 19)"
    (cd "$ROOT" && nice -n 19 cargo build --release -p portcullis --bin portcullis -p portcullis-tools --bin loadgen)
    if ((QUICKFIX && ${#SESSIONS} == 0 && KNOBS == 0)); then
        (cd "$ROOT/tools/peers" && nice -n 19 cargo build --release --bin quickfix-acceptor)
    fi
fi
for b in portcullis loadgen; do
    [[ -x $BIN/$b ]] || die "$BIN/$b is missing (run without --no-build)"
done

# The server started last; stopped (by its pid only) on exit.
SERVER_PID=""
stop_server() {
    if [[ -n $SERVER_PID ]]; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=""
    fi
}
trap stop_server EXIT

# start_server LOG WHAT COMMAND...: starts it in the background, waits for WHAT in its log.
start_server() {
    local log=$1 what=$2
    shift 2
    "$@" >"$log" 2>&1 &
    SERVER_PID=$!
    local i
    for ((i = 0; i < 600; i++)); do
        grep -q "$what" "$log" 2>/dev/null && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || { cat "$log" >&2; die "$1 exited at start"; }
        sleep 0.1
    done
    die "$1 did not start in 60 s (see $log)"
}

# Round being run, and the suffix of its files ("" with one round, ".r2" in round 2 of N).
ROUND=1
SUF=""
# Row labels in order of first appearance; FILES[label]: the round's summaries, comma
# separated, "-" for a round that measured nothing (`loadgen table` LABEL=FILE,FILE,…).
LABELS=()
declare -A FILES=()

# add_row LABEL: the run of this round into the table ("-" if it wrote no summary).
add_row() {
    local f=$OUT/$1$SUF.json
    if [[ ! -s $f ]]; then
        echo "compare.sh: $1$SUF measured nothing (see $OUT/$1$SUF.txt and $1$SUF.server.log)" >&2
        f=-
    fi
    if [[ -z ${FILES[$1]+set} ]]; then
        LABELS+=("$1")
        # Rounds before this label first ran.
        local k pad=""
        for ((k = 1; k < ROUND; k++)); do pad+="-,"; done
        FILES[$1]=$pad$f
    else
        FILES[$1]+=",$f"
    fi
}

# Every server starts on an empty data folder / memory store: sequence numbers start at 1, so
# no ResetSeqNumFlag logon (which would start each session's store again on the gateway thread).
LOAD=(--rate "$RATE" --duration-s "$DURATION" --warmup-s "$WARMUP")
PIN=1

# run_echo LABEL MODE: the floor.
run_echo() {
    local label=$1 mode=$2
    local f=$OUT/$label$SUF
    echo "== $label$SUF: echo-server --mode $mode"
    start_server "$f.server.log" '^[0-9]' \
        "$BIN/loadgen" echo-server --listen 127.0.0.1:0 --mode "$mode" --cpu "$SERVER_CPU"
    local addr
    addr=$(head -1 "$f.server.log")
    "$BIN/loadgen" echo --connect "$addr" --size "$SIZE" "${LOAD[@]}" --cpu "$CLIENT_CPU" \
        --hgrm "$f.hgrm" --json "$f.json" --timeline "$f.timeline.csv" | tee "$f.txt" || true
    stop_server
    add_row "$label"
}

# run_gateway LABEL SESSIONS [gen-config options...]; PIN=0 leaves both ends unpinned.
run_gateway() {
    local label=$1 n=$2
    shift 2
    local f=$OUT/$label$SUF
    echo "== $label$SUF: portcullis, $n session(s) $*"
    local data=$f.data
    rm -rf "$data"
    local server_pin=() client_pin=()
    if ((PIN)); then
        server_pin=(--cpu "$SERVER_CPU")
        client_pin=(--cpu "$CLIENT_CPU")
    fi
    # `ack` keeps every order open: room for all of them.
    "$BIN/loadgen" gen-config --sessions "$n" "${server_pin[@]}" --venue ack \
        --max-orders "$(awk "BEGIN { print int($RATE * ($DURATION + $WARMUP) * 1.1) + 1000 }")" \
        --listen "127.0.0.1:$GW_PORT" --data-dir "$data" "$@" >"$f.toml"
    local signed=()
    if [[ " $* " == *" --auth "* ]]; then
        # The load key, bound to every load session (as gen-config's comment says), then
        # BULK_KEYS more keys in one rewrite of the store.
        local ids=()
        local s
        for ((s = 1; s <= n; s++)); do
            if ((n == 1)); then ids+=(--comp-id LOAD); else ids+=(--comp-id "$(printf 'LOAD%04d' "$s")"); fi
        done
        "$BIN/portcullis" keys --config "$f.toml" add load --allow 127.0.0.1/32 \
            --secret-out "$f.secret" "${ids[@]}" >/dev/null
        if ((${BULK_KEYS:-0} > 0)); then
            echo "   adding $BULK_KEYS keys (portcullis keys generate)"
            /usr/bin/time -f "   keys generate: %e s, %M KiB max RSS" \
                "$BIN/portcullis" keys --config "$f.toml" generate --count "$BULK_KEYS" \
                --prefix bulk --comp-id NOBODY --allow 127.0.0.1/32
        fi
        signed=(--key-id load --secret-file "$f.secret")
    fi
    local proto=()
    # Binary order entry: gen-config made an sbe listener and FIXP sessions.
    if [[ " $* " == *" --sbe "* ]]; then proto=(--sbe); fi
    start_server "$f.server.log" 'listening on' \
        "$BIN/portcullis" run --config "$f.toml"
    "$BIN/loadgen" fix --connect "127.0.0.1:$GW_PORT" --sessions "$n" "${LOAD[@]}" \
        "${client_pin[@]}" "${signed[@]}" "${proto[@]}" \
        --hgrm "$f.hgrm" --json "$f.json" --timeline "$f.timeline.csv" | tee "$f.txt" || true
    stop_server
    tail -1 "$f.server.log"
    rm -rf "$data"
    add_row "$label"
}

# run_quickfix LABEL STORE: the QuickFIX acceptor with its memory or file store.
run_quickfix() {
    local label=$1 store=$2
    local f=$OUT/$label$SUF
    echo "== $label$SUF: quickfix-acceptor --mode poll --store $store"
    [[ -x $BIN/quickfix-acceptor ]] || die "$BIN/quickfix-acceptor is missing"
    # The file store goes into a temporary folder: under $OUT, beside the gateway's data.
    TMPDIR=$OUT start_server "$f.server.log" 'listening on' \
        "$BIN/quickfix-acceptor" --port "$QF_PORT" --cpu "$SERVER_CPU" --mode poll --store "$store"
    "$BIN/loadgen" fix --connect "127.0.0.1:$QF_PORT" "${LOAD[@]}" --cpu "$CLIENT_CPU" \
        --hgrm "$f.hgrm" --json "$f.json" --timeline "$f.timeline.csv" | tee "$f.txt" || true
    stop_server
    tail -1 "$f.server.log"
    add_row "$label"
}

# one_round: the whole sequence of systems once (files suffixed by $SUF).
one_round() {
    SUBJECTS=()
    run_echo floor-a spin
    if ((KNOBS)); then
        run_gateway gateway 1 --flush-interval-ms 0
        PIN=0 run_gateway gateway-unpinned 1 --flush-interval-ms 0
        run_gateway gateway-blocking 1 --flush-interval-ms 0 --blocking
        run_gateway gateway-nospin 1 --flush-interval-ms 0 --spin-read-conns 0
        run_gateway gateway-flush1s 1
        SUBJECTS=(--subject gateway)
    elif [[ -n $SESSIONS ]]; then
        IFS=, read -ra NS <<<"$SESSIONS"
        for n in "${NS[@]}"; do
            run_gateway "gateway-$n" "$n" --flush-interval-ms 0
        done
        SUBJECTS=(--subject "gateway-${NS[-1]}")
        if ((KEYS > 0)); then
            run_gateway gateway-signed 1 --flush-interval-ms 0 --auth
            BULK_KEYS=$KEYS run_gateway "gateway-keys$KEYS" 1 --flush-interval-ms 0 --auth
            SUBJECTS+=(--subject "gateway-keys$KEYS")
        fi
    elif ((KEYS > 0)); then
        run_gateway gateway 1 --flush-interval-ms 0
        run_gateway gateway-signed 1 --flush-interval-ms 0 --auth
        BULK_KEYS=$KEYS run_gateway "gateway-keys$KEYS" 1 --flush-interval-ms 0 --auth
        SUBJECTS=(--subject "gateway-keys$KEYS")
    else
        run_echo floor-b mio
        run_gateway gateway 1 --flush-interval-ms 0
        if ((SBE)); then run_gateway gateway-sbe 1 --flush-interval-ms 0 --sbe --auth; fi
        run_gateway gateway-flush1s 1
        if ((QUICKFIX)); then
            [[ $QF_STORE == file ]] || run_quickfix quickfix memory
            [[ $QF_STORE == memory ]] || run_quickfix quickfix-file file
        fi
        SUBJECTS=(--subject gateway --subject gateway-flush1s)
        if ((SBE)); then SUBJECTS+=(--subject gateway-sbe); fi
    fi
}

for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
    if ((ROUNDS > 1)); then
        SUF=.r$ROUND
        echo "==== round $ROUND of $ROUNDS"
    fi
    one_round
done

ROWS=()
for l in "${LABELS[@]}"; do
    ROWS+=("$l=${FILES[$l]}")
done
# Only subjects that measured something.
KEEP=()
for ((i = 1; i < ${#SUBJECTS[@]}; i += 2)); do
    for r in "${ROWS[@]}"; do
        [[ ${r%%=*} == "${SUBJECTS[i]}" ]] && KEEP+=(--subject "${SUBJECTS[i]}")
    done
done
SUBJECTS=("${KEEP[@]}")
# The key ratios of every round (only against rows that exist).
SPREADS=()
for s in p50:floor-a p99.9:floor-a p99:quickfix p99:quickfix-file; do
    [[ -n ${FILES[${s#*:}]+set} ]] && SPREADS+=(--spread "$s")
done

# The plot: round 1 of every row that measured it.
PLOT=()
for l in "${LABELS[@]}"; do
    first=${FILES[$l]%%,*}
    [[ $first == - ]] || PLOT+=("$l=${first%.json}.hgrm")
done
"$BIN/loadgen" plot --svg "$OUT/compare.svg" \
    --title "order → first answer at $RATE/s (floors: echo of $SIZE B)" "${PLOT[@]}" ||
    echo "compare.sh: no plot (a run measured nothing?)" >&2

{
    echo
    echo "== $(date -u +%FT%TZ) $(nproc) CPUs, rate $RATE/s, ${DURATION} s after ${WARMUP} s warm-up," \
        "server on CPU $SERVER_CPU, loadgen on CPU $CLIENT_CPU, $ROUNDS round(s)"
    if ((ROUNDS > 1)); then
        "$BIN/loadgen" table "${SUBJECTS[@]}" "${SPREADS[@]}" "${ROWS[@]}"
    else
        "$BIN/loadgen" table "${SUBJECTS[@]}" "${ROWS[@]}"
    fi
} | tee "$OUT/table.txt"

if ((CODEC)); then
    echo "== codec: ours against fefix (criterion)"
    (cd "$ROOT/tools/peers" && nice -n 19 cargo bench --bench codec_peers 2>&1) |
        tee "$OUT/codec.txt" | grep -E '^(nos_parse|exec_report_encode)/|time:' || true
fi
echo "results: $OUT"
