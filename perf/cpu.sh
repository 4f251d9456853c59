#!/usr/bin/env bash
# CPU time per request of a bare httputil.ReverseProxy and of hardcap (durable metering on), each
# loaded by wrk as ../shared/perf/run.sh does (C connections, same small chat request), rounds
# interleaved in one run: the user+system CPU the proxy process used during a round, divided by the
# requests it served. With a rate, vegeta drives a fixed rate instead of wrk.
# Usage: perf/cpu.sh [seconds, default 5] [connections, default 64] [rate, default none: saturation]
#   SHARED=dir: the shared perf dir (default ../shared/perf beside the project)
set -u
D=${1:-5}; C=${2:-64}; RATE=${3:-}
P="$(cd "$(dirname "$0")/.." && pwd)"
S=${SHARED:-$P/../shared/perf}
w=$(mktemp -d); pids=()
cleanup(){ for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; rm -rf "$w"; }; trap cleanup EXIT
if [ -n "$RATE" ]; then
  V=${VEGETA:-$(command -v vegeta || echo "$(go env GOPATH)/bin/vegeta")}
  [ -x "$V" ] || { go install github.com/tsenart/vegeta/v12@latest && V="$(go env GOPATH)/bin/vegeta"; } || { echo "no vegeta"; exit 1; }
else
  command -v wrk >/dev/null || { apt-get install -y -qq wrk >/dev/null 2>&1 || { echo "no wrk"; exit 1; }; }
fi
(cd "$S/baseline" && go build -o "$w/baseline" .) || { echo "baseline build failed"; exit 1; }
(cd "$P" && go build -o "$w/hardcap" ./cmd/hardcap) || { echo "hardcap build failed"; exit 1; }
"$w/baseline" -mode upstream -listen 127.0.0.1:9310 & pids+=($!)
"$w/baseline" -mode proxy -listen 127.0.0.1:9311 -target http://127.0.0.1:9310 2>/dev/null & pids+=($!); BARE=$!
cat > "$w/hc.yaml" <<YAML
listen: 127.0.0.1:9312
data_dir: $w/data
providers:
  openai:
    base_url: http://127.0.0.1:9310/v1
    api_key: env:OPENAI_API_KEY
YAML
OPENAI_API_KEY=sk-perf HARDCAP_ADMIN_TOKEN=perf-admin "$w/hardcap" serve --config "$w/hc.yaml" >"$w/hc.log" 2>&1 & pids+=($!); HC=$!
for i in $(seq 50); do curl -s -o /dev/null http://127.0.0.1:9312/healthz && break; sleep 0.2; done
export HARDCAP_SERVER=http://127.0.0.1:9312 HARDCAP_ADMIN_TOKEN=perf-admin
"$w/hardcap" project create perf --budget 1000000 --json >/dev/null
tok=$("$w/hardcap" token create --project perf --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])') || { echo "no token"; exit 1; }
printf '%s' '{"model":"gpt-4o-mini","max_tokens":5,"messages":[{"role":"user","content":"hello there"}]}' > "$w/body.json"
for t in bare:9311 hardcap:9312; do
  printf 'POST http://127.0.0.1:%s/v1/chat/completions\nContent-Type: application/json\nAuthorization: Bearer %s\n@%s\n' "${t##*:}" "$tok" "$w/body.json" > "$w/${t%%:*}.txt"
done
cat > "$w/post.lua" <<LUA
wrk.method = "POST"
wrk.body   = '{"model":"gpt-4o-mini","max_tokens":5,"messages":[{"role":"user","content":"hello there"}]}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $tok"
LUA
port(){ case $1 in bare) echo 9311;; hardcap) echo 9312;; esac; }
load(){ # name -> "ok total"
  if [ -n "$RATE" ]; then
    "$V" attack -rate=$RATE -duration=${D}s -targets="$w/$1.txt" | "$V" report -type=json > "$w/$1.json"
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["status_codes"].get("200",0), d["requests"])' "$w/$1.json"
  else
    wrk -t2 -c"$C" -d"${D}s" -s "$w/post.lua" "http://127.0.0.1:$(port $1)/v1/chat/completions" 2>/dev/null |
      awk '/requests in/{n=$1} /Non-2xx/{bad=$NF} END{print n-bad, n}'
  fi
}
ticks(){ awk '{print $14+$15}' /proc/$1/stat; }
hz=$(getconf CLK_TCK)
declare -A us
for round in 1 2; do
  for t in bare:$BARE hardcap:$HC; do
    n=${t%%:*}; pid=${t##*:}
    a=$(ticks "$pid")
    read -r ok req < <(load "$n")
    b=$(ticks "$pid")
    u=$(python3 -c "print(($b-$a)/$hz*1e6/max($ok,1))")
    printf 'round %d %-8s %6d requests (%d ok): %.1f us CPU per request\n' "$round" "$n" "$req" "$ok" "$u"
    us[$n]="${us[$n]:-} $u"
  done
done
python3 - "${us[bare]}" "${us[hardcap]}" <<'PY'
import sys
b=[float(x) for x in sys.argv[1].split()]; h=[float(x) for x in sys.argv[2].split()]
print(f"CPU per request hardcap/bare = {sum(h)/sum(b):.2f} (hardcap {sum(h)/len(h):.0f} us, bare {sum(b)/len(b):.0f} us)")
PY
