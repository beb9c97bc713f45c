#!/usr/bin/env bash
# The instruction gate (issue 17): instructions per order and per codec operation, counted by
# callgrind. The counts are deterministic (the same binary and input give the same count
# whatever else the machine is doing), so a change is signal, not noise. Prints one
# `NAME VALUE` line each:
#
#   order_instructions      the gateway thread's input handling per order: framing, decode,
#                           validation, session, throttle, risk, the simulated venue (`ack`),
#                           journal and store appends, the report's encode
#                           (tools/peers/instructions.sh: FIX, 3000 orders, one in flight)
#   nos_parse_instructions  a FIX 4.4 NewOrderSingle framed, decoded, validated and its order
#                           fields read (`parse_nos` in benches/codec.rs)
#   er_encode_instructions  a FIX 4.4 fill ExecutionReport encoded (`encode_exec_report`)
#
#   tools/perf/instructions.sh                              # the figures
#   tools/perf/instructions.sh --check benches/baseline.json
#
# --check also compares each figure with the baseline file's and exits non-zero when one is
# more than its tolerance (3 % unless the file says otherwise) above it. FIGURES=FILE takes the
# figures from FILE (this script's output) instead of measuring them. Raising a baseline is
# a deliberate commit that says why (benches/baseline.json keeps the reason beside the figure).
#
# Needs valgrind and release binaries: `cargo build --release -p portcullis -p portcullis-tools`
# (this script builds the codec bench itself, with `cargo bench --no-run`, the same profile).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
CHECK=
if [[ ${1:-} == --check ]]; then
    CHECK=${2:?--check needs the baseline file}
fi
command -v valgrind >/dev/null || {
    echo "valgrind is not installed (apt-get install -y valgrind)" >&2
    exit 2
}
OUT=$(mktemp -d "${TMPDIR:-/tmp}/portcullis-gate.XXXXXX")
trap 'rm -rf "$OUT"' EXIT

if [[ -n ${FIGURES:-} ]]; then
    cp "$FIGURES" "$OUT/figures.txt"
else

# The order path, through the real gateway and loadgen over TCP.
ORDERS=3000 "$ROOT/tools/peers/instructions.sh" >"$OUT/order.txt"
order=$(awk '/^per order:/ { print $3 }' "$OUT/order.txt")
[[ -n $order ]] || {
    echo "no per-order figure from tools/peers/instructions.sh:" >&2
    cat "$OUT/order.txt" >&2
    exit 1
}

# The codec operations, in the codec bench's counting mode.
bench=$(cargo bench --bench codec --no-run 2>&1 | grep -o 'target/release/deps/codec-[0-9a-f]*' | tail -1)
[[ -x $bench ]] || {
    echo "cargo bench --bench codec --no-run made no executable" >&2
    exit 1
}
N=20000
per_call() {
    local fn=$1
    CODEC_COUNT=$N valgrind --tool=callgrind --callgrind-out-file="$OUT/$fn.out" \
        --toggle-collect="*$fn*" "$bench" >/dev/null 2>&1
    callgrind_annotate "$OUT/$fn.out" 2>/dev/null |
        awk -v n=$N '/PROGRAM TOTALS/ { gsub(",", "", $1); printf "%.0f\n", $1 / n }'
}
nos=$(per_call parse_nos)
er=$(per_call encode_exec_report)

printf 'order_instructions %s\nnos_parse_instructions %s\ner_encode_instructions %s\n' \
    "$order" "$nos" "$er" | tee "$OUT/figures.txt"
fi

[[ -z $CHECK ]] && exit 0
python3 - "$CHECK" "$OUT/figures.txt" <<'PY'
import json, sys
base = json.load(open(sys.argv[1]))
tolerance = float(base.get("tolerance_percent", 3))
figures = dict(l.split() for l in open(sys.argv[2]) if l.strip())
failed = False
for name, value in figures.items():
    entry = base.get("figures", {}).get(name)
    if entry is None:
        print(f"{name}: {value} (no baseline: add it to {sys.argv[1]})")
        failed = True
        continue
    ref = entry["value"]
    change = (int(value) - ref) * 100.0 / ref
    verdict = "ok"
    if change > tolerance:
        verdict = f"FAILED: more than {tolerance:g} % above the baseline"
        failed = True
    elif change < -tolerance:
        verdict = "ok (below the baseline: lower it in the file to keep the gain)"
    print(f"{name}: {value} against {ref} ({change:+.1f} %) {verdict}")
for name in base.get("figures", {}):
    if name not in figures:
        print(f"{name}: not measured (FAILED)")
        failed = True
sys.exit(1 if failed else 0)
PY
