#!/usr/bin/env bash
# The order path's p50 with and without the ops port scraped every 100 ms (issue 14): release
# binaries of this checkout (`cargo build --release -p portcullis -p portcullis-tools` first),
# gateway spinning on CPU 0, loadgen on CPU 1, 10k orders/s, 10 s after 2 s warm-up, ROUNDS
# interleaved rounds of quiet / scraped. Prints each run's percentiles (µs). Needs curl.
set -euo pipefail
B=${B:-$(cd "$(dirname "$0")/../.." && pwd)/target/release}
ROUNDS=${ROUNDS:-2}
D=$(mktemp -d)
$B/loadgen gen-config --auth --cpu 0 --flush-interval-ms 0 --listen 127.0.0.1:29878 --data-dir $D/data > $D/cfg.toml
cat >> $D/cfg.toml <<EOT

[ops]
address = "127.0.0.1:29880"
plaintext = true
metrics_public = true
EOT
$B/portcullis keys --config $D/cfg.toml add load --allow 127.0.0.1/32 --secret-out $D/load.secret --comp-id LOAD > /dev/null
$B/portcullis run --config $D/cfg.toml > $D/gw.log 2>&1 &
GW=$!
sleep 3
run() {
  $B/loadgen fix --connect 127.0.0.1:29878 --sender LOAD --target PORTCULLIS --key-id load \
    --secret-file $D/load.secret --reset --cpu 1 --rate 10000 --duration-s 10 --warmup-s 2 \
    --json $D/$1.json > $D/$1.txt 2>&1
}
for r in $(seq 1 $ROUNDS); do
  run quiet$r
  ( while true; do curl -s -o /dev/null http://127.0.0.1:29880/metrics; sleep 0.1; done ) &
  S=$!
  run scraped$r
  kill $S; wait $S 2>/dev/null || true
done
kill -INT $GW; wait $GW || true
for f in $D/*.txt; do echo "== $(basename $f)"; grep -iE "p50|p90|p99|percentile|µs" $f | head -4; done
echo "dir: $D"
