#!/usr/bin/env bash
# The usage history at scale: builds a ledger with a synthetic history of N usage records (default
# 1,000,000; storage's TestGenerateUsageHistory writes them directly), serves it with the built-in
# demo providers, and measures with the CLI and wrk:
#   bytes per record (file size / records), the start (deep check of every entry),
#   `usage --token X` (4 records), `usage --since 1h --limit 100`, `usage --limit 100` (median of 5),
#   RSS at rest, peak RSS while 4 `usage --json` exports stream at once, and
#   chat throughput with wrk without an export and during one (the ratio).
# Usage: perf/usage.sh [records] [seconds-per-wrk-round] [connections]
set -u
N=${1:-1000000}; S=${2:-8}; C=${3:-32}
root="$(cd "$(dirname "$0")/.." && pwd)"
w=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$w"' EXIT
command -v wrk >/dev/null || { apt-get install -y -qq wrk >/dev/null 2>&1 || { echo "no wrk"; exit 1; }; }
(cd "$root" && go build -o "$w/hardcap" ./cmd/hardcap) || { echo "hardcap build failed"; exit 1; }
port=9402
export HARDCAP_SERVER=http://127.0.0.1:$port HARDCAP_ADMIN_TOKEN=perf-admin
hc() { "$w/hardcap" "$@"; }
ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
start() {
  t0=$(date +%s%N)
  "$w/hardcap" serve --demo --listen 127.0.0.1:$port --data-dir "$w/data" >>"$w/hc.log" 2>&1 &
  pid=$!
  for i in $(seq 600); do curl -s -o /dev/null "http://127.0.0.1:$port/healthz" && break; sleep 0.1; done
  echo "start: $(ms "$t0") ms (hardcap serve until /healthz answers)"
}
stop() { kill -TERM "$pid"; wait "$pid" 2>/dev/null; }
rss() { echo $(( $(ps -o rss= -p "$pid") / 1024 )); }

start
hc project create perf --budget 1000000 --json >/dev/null
tok=$(hc token create --project perf --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])') || { echo "no token"; exit 1; }
stop
t0=$(date +%s%N)
(cd "$root" && go test -c -o "$w/storage.test" ./storage) || { echo "storage test build failed"; exit 1; }
(cd "$root/storage" && HARDCAP_USAGE_DB="$w/data/hardcap.db" HARDCAP_USAGE_RECORDS=$N "$w/storage.test" -test.run '^TestGenerateUsageHistory$' -test.count=1 -test.v) | grep -o '[0-9]* records, [0-9]* bytes, [0-9]* B/record'
echo "generated in $(ms "$t0") ms: $(stat -c %s "$w/data/hardcap.db") bytes / $N records = $(( $(stat -c %s "$w/data/hardcap.db") / N )) B/record"
start
echo "RSS at rest after start: $(rss) MB"

median() { sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
query() {
  local label=$1; shift
  for i in 1 2 3 4 5; do t0=$(date +%s%N); hc usage "$@" >/dev/null || echo "FAILED: usage $*" >&2; ms "$t0"; done | median | xargs -I{} echo "$label: {} ms (median of 5, wall time of the CLI: hardcap usage $*)"
}
for i in 1 2 3 4 5; do t0=$(date +%s%N); hc --version >/dev/null; ms "$t0"; done | median | xargs -I{} echo "CLI start alone: {} ms (median of 5: hardcap --version)"
query "usage --token t7" --token t7
query "usage --since 1h --limit 100" --since 1h --limit 100
query "usage --limit 100" --limit 100
api() {
  local label=$1 q=$2
  for i in 1 2 3 4 5; do curl -s -o /dev/null -w '%{time_total}\n' -H "Authorization: Bearer $HARDCAP_ADMIN_TOKEN" "$HARDCAP_SERVER/admin/v1/usage?$q"; done |
    sort -n | awk '{a[NR]=$1} END{printf "%.1f\n", a[3]*1000}' | xargs -I{} echo "$label: {} ms (median of 5: curl $HARDCAP_SERVER/admin/v1/usage?$q)"
}
api "API --token t7" "token=t7"
api "API --since 1h --limit 100" "since=1h&limit=100"
api "API --limit 100" "limit=100"
hc usage --token t7 --json | python3 -c 'import json,sys; d=json.load(sys.stdin); print("  --token t7: matched", d["matched"], "records", len(d["records"]), "spent", d["spent_usd"])'
echo "RSS at rest after the queries: $(rss) MB"

t0=$(date +%s%N)
hc usage --json >"$w/export.json"
echo "one usage --json export: $(ms "$t0") ms, $(wc -l <"$w/export.json") lines, $(stat -c %s "$w/export.json") bytes"
rm -f "$w/export.json"
peak=0
for i in 1 2 3 4; do hc usage --json >"$w/export$i.json" & done
t0=$(date +%s%N)
while [ "$(jobs -r | wc -l)" -gt 1 ]; do r=$(rss); [ "$r" -gt "$peak" ] && peak=$r; sleep 0.1; done
wait $(jobs -p | grep -v "^$pid$") 2>/dev/null
echo "4 concurrent usage --json exports: $(ms "$t0") ms; peak server RSS $peak MB; export sizes $(for i in 1 2 3 4; do stat -c %s "$w/export$i.json"; done | tr '\n' ' ')bytes"
rm -f "$w"/export*.json
echo "RSS after the exports: $(rss) MB"

cat > "$w/post.lua" <<LUA
wrk.method = "POST"
wrk.body   = '{"model":"gpt-4o-mini","max_tokens":5,"messages":[{"role":"user","content":"hello there"}]}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $tok"
LUA
run() { wrk -t2 -c"$C" -d"${S}s" -s "$w/post.lua" --latency "http://127.0.0.1:$port/v1/chat/completions" 2>/dev/null | awk '/Requests\/sec/{r=$2} /Non-2xx/{bad=$NF} END{printf "%s %s\n", r, (bad==""?0:bad)}'; }
exporting() { while :; do hc usage --json >/dev/null; done; }
declare -a quiet busy
for round in 1 2; do
  read r bad < <(run); quiet+=("$r"); echo "round $round without an export: $r req/s (non-2xx $bad)"
  exporting & ex=$!
  read r bad < <(run); busy+=("$r"); echo "round $round during an export: $r req/s (non-2xx $bad)"
  kill "$ex"; wait "$ex" 2>/dev/null
done
python3 - "${quiet[*]}" "${busy[*]}" <<'PY'
import sys
q=[float(x) for x in sys.argv[1].split()]; b=[float(x) for x in sys.argv[2].split()]
print(f"throughput during an export / without = {sum(b)/sum(q):.2f} ({sum(b)/len(b):.0f} vs {sum(q)/len(q):.0f} req/s)")
PY
echo "RSS at the end: $(rss) MB"
