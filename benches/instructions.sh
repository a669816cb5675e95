#!/usr/bin/env bash
# Instructions per request for each stack of benches/instructions.rs, under
# callgrind: (count for 11,000 requests - count for 1,000) / 10,000, so that
# start-up and the warm-up login cancel out. Needs valgrind.
set -euo pipefail
cd "$(dirname "$0")/.."
binary=$(cargo bench --bench instructions --no-run --message-format=json 2>/dev/null \
  | grep -o '"executable":"[^"]*instructions[^"]*"' | tail -n 1 | cut -d'"' -f4)
count() {
  valgrind --tool=callgrind --callgrind-out-file=/dev/null "$binary" "$1" "$2" 2>&1 \
    | awk '/Collected/ { print $4 }'
}
for stack in bare add_authorization add_authorization_retry simacan_auth; do
  few=$(count "$stack" 1000)
  many=$(count "$stack" 11000)
  echo "$stack: $(( (many - few) / 10000 )) instructions per request"
done
