#!/usr/bin/env bash
# The order path's percentiles with and without the ops port scraped every 100 ms (issue 14):
# release binaries of this checkout (`cargo build --release -p portcullis -p portcullis-tools`
# first), gateway spinning on CPU 0, loadgen on CPU 1, 10k orders/s, 10 s after 2 s warm-up,
# ROUNDS interleaved rounds of quiet / scraped (LOAD="--closed-loop --window 16", say, replaces
# the 10k/s open loop with a saturating closed loop). Each run starts a gateway on a fresh data folder
# (one gateway for all six runs stalled its hot thread for 1.3–1.5 s in the sixth, twice, after
# ≈ 4.4 GB of records, trail and stores written: the kernel's dirty limit here, 20 % of memory,
# is the suspect, issue 17). The scraper is one curl process on a kept-alive connection at 10
# requests/s (`--rate`), as Prometheus scrapes: not a process start per scrape. Prints each
# run's percentiles (µs), the medians, and how fast the port answered the scrapes meanwhile.
# Needs curl ≥ 7.84.
set -euo pipefail
B=${B:-$(cd "$(dirname "$0")/../.." && pwd)/target/release}
ROUNDS=${ROUNDS:-3}
D=$(mktemp -d)
# Nothing outlives the script (a failed run must not leave a gateway or the scraper behind).
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT
run() {
    local name=$1 scrape=$2
    rm -rf "$D/data"
    "$B/loadgen" gen-config --auth --cpu 0 --flush-interval-ms 0 --listen 127.0.0.1:29878 \
        --data-dir "$D/data" > "$D/cfg.toml"
    cat >> "$D/cfg.toml" <<EOT

[ops]
address = "127.0.0.1:29880"
plaintext = true
metrics_public = true
EOT
    "$B/portcullis" keys --config "$D/cfg.toml" add load --allow 127.0.0.1/32 \
        --secret-out "$D/load.secret" --comp-id LOAD > /dev/null
    "$B/portcullis" run --config "$D/cfg.toml" > "$D/$name.gw.log" 2>&1 &
    local gw=$! s=""
    sleep 3
    if ((scrape)); then
        # -w to stderr: unbuffered, so nothing is lost when the scraper is killed.
        curl -s -o /dev/null -w '%{stderr}%{http_code} %{time_total}\n' --rate 10/s \
            "http://127.0.0.1:29880/metrics?n=[1-10000]" 2> "$D/$name.scrapes" &
        s=$!
    fi
    "$B/loadgen" fix --connect 127.0.0.1:29878 --sender LOAD --target PORTCULLIS --key-id load \
        --secret-file "$D/load.secret" --cpu 1 ${LOAD:---rate 10000} --duration-s 10 --warmup-s 2 \
        --json "$D/$name.json" > "$D/$name.txt" 2>&1 || true
    if [[ -n $s ]]; then
        kill "$s" 2>/dev/null || true
        wait "$s" 2>/dev/null || true
    fi
    kill -INT "$gw"
    wait "$gw" || true
}
for r in $(seq 1 "$ROUNDS"); do
    run "quiet$r" 0
    run "scraped$r" 1
done
rm -rf "$D/data"
echo "run            p50        p90        p99      p99.9     p99.99        max   (µs)"
for f in "$D"/quiet*.txt "$D"/scraped*.txt; do
    printf '%-9s %s   %s\n' "$(basename "$f" .txt)" "$(sed -n 4p "$f")" \
        "$(sed -n 2p "$f" | grep -o 'achieved [0-9.]*/s')"
done
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
q=$(for f in "$D"/quiet*.txt; do sed -n 4p "$f" | awk '{print $1}'; done | median)
s=$(for f in "$D"/scraped*.txt; do sed -n 4p "$f" | awk '{print $1}'; done | median)
echo "median p50: quiet $q µs, scraped $s µs, scraped/quiet $(awk -v q="$q" -v s="$s" 'BEGIN {printf "%.3f", s / q}')"
# The port's side: every scrape's answer time (s) during the load, and any answer but 200.
cat "$D"/scraped*.scrapes | awk '$1 != 200 { bad++ } { print $2 }
    END { if (bad) print "scrapes not answered 200: " bad > "/dev/stderr" }' | sort -n |
    awk '{ a[NR] = $1 } END { if (NR) printf "scrapes during the load: %d, answer time p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
        NR, a[int(NR * 0.5) + 1] * 1000, a[int(NR * 0.99) + 1] * 1000, a[NR] * 1000 }'
echo "dir: $D"
