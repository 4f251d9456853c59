#!/usr/bin/env bash
# The ledger writer's profile at a fixed request rate: hardcap (durable metering on) in front of the
# shared fake upstream, driven by vegeta as ../shared/perf/latency.sh drives it; then `hardcap status`
# prints the writer's commits, operations per commit and commit time (mean, p50, p99, max), and the
# script times single fdatasyncs of one in-place 4 KB block in the same data dir. This is what bounds
# the added latency: every reservation waits for one bbolt commit, and a commit is two fdatasyncs.
# Usage: perf/commits.sh [rate, default 500] [seconds, default 10]
#   SHARED=dir: the shared perf dir (default ../shared/perf beside the project)
set -u
RATE=${1:-500}; D=${2:-10}
P="$(cd "$(dirname "$0")/.." && pwd)"
S=${SHARED:-$P/../shared/perf}
w=$(mktemp -d); pids=()
cleanup(){ for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; rm -rf "$w"; }; trap cleanup EXIT
V=${VEGETA:-$(command -v vegeta || echo "$(go env GOPATH)/bin/vegeta")}
[ -x "$V" ] || { go install github.com/tsenart/vegeta/v12@latest && V="$(go env GOPATH)/bin/vegeta"; } || { echo "no vegeta"; exit 1; }
(cd "$S/baseline" && go build -o "$w/baseline" .) || { echo "baseline build failed"; exit 1; }
(cd "$P" && go build -o "$w/hardcap" ./cmd/hardcap) || { echo "hardcap build failed"; exit 1; }
"$w/baseline" -mode upstream -listen 127.0.0.1:9320 & pids+=($!)
cat > "$w/hc.yaml" <<YAML
listen: 127.0.0.1:9322
data_dir: $w/data
providers:
  openai:
    base_url: http://127.0.0.1:9320/v1
    api_key: env:OPENAI_API_KEY
YAML
OPENAI_API_KEY=sk-perf HARDCAP_ADMIN_TOKEN=perf-admin "$w/hardcap" serve --config "$w/hc.yaml" >"$w/hc.log" 2>&1 & pids+=($!)
for i in $(seq 50); do curl -s -o /dev/null http://127.0.0.1:9322/healthz && break; sleep 0.2; done
export HARDCAP_SERVER=http://127.0.0.1:9322 HARDCAP_ADMIN_TOKEN=perf-admin
"$w/hardcap" project create perf --budget 1000000 --json >/dev/null
tok=$("$w/hardcap" token create --project perf --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])') || { echo "no token"; exit 1; }
printf '%s' '{"model":"gpt-4o-mini","max_tokens":5,"messages":[{"role":"user","content":"hello there"}]}' > "$w/body.json"
printf 'POST http://127.0.0.1:9322/v1/chat/completions\nContent-Type: application/json\nAuthorization: Bearer %s\n@%s\n' "$tok" "$w/body.json" > "$w/t.txt"
"$V" attack -rate="$RATE" -duration=1s -targets="$w/t.txt" > /dev/null
probe(){ # label
python3 - "$w/data" "$1" <<'PY'
import os,sys,time
p=os.path.join(sys.argv[1],"fsync-probe")
fd=os.open(p,os.O_RDWR|os.O_CREAT,0o600); os.write(fd,b"\0"*4096); os.fsync(fd)
t=[]
for i in range(200):
    os.pwrite(fd,os.urandom(4096),0); s=time.perf_counter(); os.fdatasync(fd); t.append((time.perf_counter()-s)*1e3)
os.close(fd); os.unlink(p); t.sort()
print(f"{sys.argv[2]}: one in-place 4 KB write + fdatasync, 200 times: p50 {t[100]:.3f} ms  p99 {t[198]:.3f} ms")
PY
}
before=$("$w/hardcap" status --json | python3 -c 'import json,sys; w=json.load(sys.stdin)["writer"]; print(w["commits"], w["ops"])')
( sleep 1; probe "during the run" ) & pp=$!
"$V" attack -rate="$RATE" -duration="${D}s" -targets="$w/t.txt" | "$V" report -type=text | sed -n '/Latencies/p'
wait "$pp"
[ -n "${STRACE:-}" ] && { HCPID=$(cat "$w/data/hardcap.pid" 2>/dev/null); "$V" attack -rate="$RATE" -duration=3s -targets="$w/t.txt" >/dev/null & vp=$!; timeout 2 strace -f -T -e trace=pwrite64,fdatasync,fsync,ftruncate,fallocate -p "$HCPID" -o "$STRACE" 2>/dev/null; wait "$vp"; }
echo "hardcap status after ${D}s at ${RATE} req/s (commits and operations before the run: $before):"
"$w/hardcap" status | grep -A3 'ledger writer'
probe "idle"
