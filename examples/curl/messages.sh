#!/usr/bin/env bash
# Anthropic-shaped Messages API through hardcap, plain and streamed.
#
#   export ANTHROPIC_API_KEY=hc_...                     # a hardcap token, not a provider key
#   export ANTHROPIC_BASE_URL=http://127.0.0.1:8787    # optional; this is the default (no /v1)
#   bash examples/curl/messages.sh
#
# hardcap forwards these to Anthropic with the real key it holds, so the server
# needs an anthropic provider configured (the --demo provider is OpenAI only).
set -euo pipefail

: "${ANTHROPIC_API_KEY:?set ANTHROPIC_API_KEY to a hardcap token (hc_...)}"
BASE_URL="${ANTHROPIC_BASE_URL:-http://127.0.0.1:8787}"

echo "== message =="
curl -sS --fail-with-body "$BASE_URL/v1/messages" \
  -H "x-api-key: $ANTHROPIC_API_KEY" \
  -H "anthropic-version: 2023-06-01" \
  -H "content-type: application/json" \
  -d '{
    "model": "claude-haiku-4-5",
    "max_tokens": 64,
    "messages": [{"role": "user", "content": "Say hello from behind hardcap."}]
  }'
echo

echo "== streamed message (server-sent events) =="
curl -sS -N --fail-with-body "$BASE_URL/v1/messages" \
  -H "x-api-key: $ANTHROPIC_API_KEY" \
  -H "anthropic-version: 2023-06-01" \
  -H "content-type: application/json" \
  -d '{
    "model": "claude-haiku-4-5",
    "max_tokens": 64,
    "stream": true,
    "messages": [{"role": "user", "content": "Say hello from behind hardcap."}]
  }'
