#!/usr/bin/env bash
# The alerts in three minutes, with the demo provider and no network: budget thresholds, a new-address
# anomaly, a spend spike that freezes the token, and a resume. Run from the repository root:
#
#     bash examples/alerts-demo/run.sh
#
# It builds hardcap, starts it (--demo) with a signed JSON webhook pointing at receiver.py, makes a
# request every 10 s for two minutes (one from a new address, through X-Forwarded-For and
# trusted_proxies), then a burst of 40 requests that the spike detector (window 1 min, factor 3)
# freezes.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
go build -o "$work/hardcap" ./cmd/hardcap
export HARDCAP_WEBHOOK_SECRET="whsec_$(head -c 32 /dev/urandom | base64)"
export HARDCAP_ADMIN_TOKEN="hcadmin_$(head -c 24 /dev/urandom | base64 | tr -dc 'a-zA-Z0-9')"
export HARDCAP_SERVER=127.0.0.1:8799
cat > "$work/hardcap.yaml" <<YAML
listen: 127.0.0.1:8799
data_dir: $work/data
trusted_proxies: [127.0.0.1]
alerts:
  webhooks:
    - name: ops
      url: http://127.0.0.1:9911/hook
      secret: env:HARDCAP_WEBHOOK_SECRET
  anomalies:
    spend_spike: {action: freeze, window: 1m, factor: 3, floor_usd: "0.0005", baseline: 1h}
YAML
python3 "$here/receiver.py" 9911 > "$work/received.txt" &
"$work/hardcap" serve --demo --config "$work/hardcap.yaml" > "$work/serve.log" 2>&1 &
sleep 2
hc() { "$work/hardcap" "$@"; }
hc project create billing --budget 0.0015
hc token create --project billing --name web --json > "$work/tok.json"
tok=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["token"])' "$work/tok.json")
id=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$work/tok.json")
call() {
	curl -s -o /dev/null -w '%{http_code} ' http://127.0.0.1:8799/v1/chat/completions \
		-H "Authorization: Bearer $tok" -H "X-Forwarded-For: $1" -H 'content-type: application/json' \
		-d '{"model":"gpt-4o-mini","max_tokens":50,"messages":[{"role":"user","content":"hello"}]}'
}
echo "== a request every 10 s for two minutes, one of them from a new address"
for i in $(seq 1 13); do ip=198.51.100.1; [ "$i" = 6 ] && ip=203.0.113.77; call $ip; sleep 10; done; echo
sleep 40 # a token needs one spike window of history before the window its spend is a spike in
echo "== a burst of 40"
for i in $(seq 1 40); do call 198.51.100.1; done; echo
sleep 1
hc alerts
echo "== resume"
hc resume --token "$id"
call 198.51.100.1; echo
sleep 1
echo "== what the signed webhook received"
cat "$work/received.txt"
