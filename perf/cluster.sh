#!/usr/bin/env bash
# A replica's throughput in cluster mode against a single node, in one run:
# the same fake upstream, two hardcaps (one with its own ledger, one a
# replica of a cluster on a PostgreSQL started here), driven by wrk with the
# same small chat request, rounds interleaved; then the replica's store
# round trips per request.
# Usage: perf/cluster.sh [seconds-per-round] [connections]   (from the repo root)
# Needs: wrk, PostgreSQL's initdb/postgres (Debian: apt-get install wrk postgresql).
set -u
S=${1:-6}; C=${2:-64}
root="$(cd "$(dirname "$0")/.." && pwd)"
baseline="${HARDCAP_PERF_BASELINE:-$root/../shared/perf/baseline}"
w=$(mktemp -d); chmod 755 "$w"
cleanup() { kill $(jobs -p) 2>/dev/null; [ -n "${pgbin:-}" ] && run_pg "$pgbin/pg_ctl" -D "$w/pg" -m immediate stop >/dev/null 2>&1; rm -rf "$w"; }
trap cleanup EXIT
[ -n "${KEEP_LOGS:-}" ] && trap 'cp "$w"/*.log /tmp/ 2>/dev/null; cleanup' EXIT
command -v wrk >/dev/null || { apt-get install -y -qq wrk >/dev/null 2>&1 || { echo "no wrk"; exit 1; }; }
pgbin=$(dirname "$(ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -1)")
[ -x "$pgbin/initdb" ] || { echo "no PostgreSQL (apt-get install postgresql)"; exit 1; }
run_pg() { if [ "$(id -u)" = 0 ]; then su -s /bin/sh nobody -c "$(printf '%q ' "$@")"; else "$@"; fi; }
(cd "$baseline" && go build -o "$w/baseline" .) || { echo "baseline build failed"; exit 1; }
(cd "$root" && go build -o "$w/hardcap" ./cmd/hardcap) || { echo "hardcap build failed"; exit 1; }
mkdir -p "$w/pg" && chown nobody "$w/pg" 2>/dev/null
run_pg "$pgbin/initdb" -D "$w/pg" -U hardcap --auth trust >/dev/null || { echo "initdb failed"; exit 1; }
run_pg "$pgbin/pg_ctl" -D "$w/pg" -o "-p 9310 -k $w/pg -c listen_addresses=127.0.0.1" -l "$w/pg/log" -w start >/dev/null || { echo "postgres failed"; exit 1; }
run_pg "$pgbin/createdb" -h 127.0.0.1 -p 9310 -U hardcap hardcap
"$w/baseline" -mode upstream -listen 127.0.0.1:9300 &
for n in single:9302 cluster:9303; do
  name=${n%%:*}; port=${n##*:}
  cat > "$w/$name.yaml" <<YAML
listen: 127.0.0.1:$port
data_dir: $w/$name
providers:
  openai:
    base_url: http://127.0.0.1:9300/v1
    api_key: env:OPENAI_API_KEY
YAML
  [ "$name" = cluster ] && cat >> "$w/$name.yaml" <<YAML
cluster:
  postgres: {dsn: "postgres://hardcap@127.0.0.1:9310/hardcap"}
  replica_id: perf-1
YAML
  OPENAI_API_KEY=sk-perf HARDCAP_ADMIN_TOKEN=perf-admin-token-0123456789 "$w/hardcap" serve --config "$w/$name.yaml" >"$w/$name.log" 2>&1 &
done
for port in 9302 9303; do
  for i in $(seq 100); do curl -s -o /dev/null http://127.0.0.1:$port/healthz && break; sleep 0.2; done
done
export HARDCAP_ADMIN_TOKEN=perf-admin-token-0123456789
declare -A tok
for n in single:9302 cluster:9303; do
  name=${n%%:*}; port=${n##*:}
  "$w/hardcap" project create perf --budget 1000000 --server 127.0.0.1:$port --json >/dev/null || { echo "project create failed on $name"; cat "$w/$name.log"; exit 1; }
  tok[$name]=$("$w/hardcap" token create --project perf --server 127.0.0.1:$port --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])') || { echo "no token"; exit 1; }
  cat > "$w/$name.lua" <<LUA
wrk.method = "POST"
wrk.body   = '{"model":"gpt-4o-mini","max_tokens":5,"messages":[{"role":"user","content":"hello there"}]}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer ${tok[$name]}"
LUA
done
trips() { "$w/hardcap" status --server 127.0.0.1:9303 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["cluster"]["round_trips"])'; }
reqs() { "$w/hardcap" usage --project perf --server 127.0.0.1:9303 --limit 1 --json | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get("requests") or d.get("count") or 0)'; }
run() { wrk -t2 -c"$C" -d"${S}s" -s "$1" --latency "$2" 2>/dev/null | awk '/Requests\/sec/{r=$2} /^ +50%/{p50=$2} /^ +99%/{p99=$2} /Non-2xx/{bad=$NF} /requests in/{n=$1} END{printf "%s %s %s %s %s\n", r, p50, p99, (bad==""?0:bad), n}'; }
declare -A rps
t0=$(trips); total=0
for round in 1 2 3; do
  for n in single:9302 cluster:9303; do
    name=${n%%:*}; port=${n##*:}
    read r p50 p99 bad cnt < <(run "$w/$name.lua" "http://127.0.0.1:$port/v1/chat/completions")
    echo "round $round $name: ${r} req/s p50 $p50 p99 $p99 non-2xx $bad"
    rps[$name]="${rps[$name]:-} $r"
    [ "$name" = cluster ] && total=$((total + cnt))
  done
done
t1=$(trips)
python3 - "${rps[single]}" "${rps[cluster]}" "$((t1 - t0))" "$total" <<'PY'
import sys
s=[float(x) for x in sys.argv[1].split()]; c=[float(x) for x in sys.argv[2].split()]
trips, n = int(sys.argv[3]), int(sys.argv[4])
print(f"cluster/single throughput = {sum(c)/sum(s):.2f} (cluster {sum(c)/len(c):.0f} req/s, single {sum(s)/len(s):.0f} req/s)")
print(f"store round trips per request at steady state = {trips/max(n,1):.4f} ({trips} round trips, {n} requests)")
PY
