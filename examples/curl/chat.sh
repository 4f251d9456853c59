#!/usr/bin/env bash
# OpenAI-shaped chat completions through hardcap, plain and streamed.
#
#   export OPENAI_API_KEY=hc_...                        # a hardcap token, not a provider key
#   export OPENAI_BASE_URL=http://127.0.0.1:8787/v1    # optional; this is the default
#   bash examples/curl/chat.sh
set -euo pipefail

: "${OPENAI_API_KEY:?set OPENAI_API_KEY to a hardcap token (hc_...)}"
BASE_URL="${OPENAI_BASE_URL:-http://127.0.0.1:8787/v1}"

echo "== chat completion =="
curl -sS --fail-with-body "$BASE_URL/chat/completions" \
  -H "Authorization: Bearer $OPENAI_API_KEY" \
  -H "Content-Type: application/json" \
  -d '{
    "model": "gpt-4o-mini",
    "max_completion_tokens": 64,
    "messages": [{"role": "user", "content": "Say hello from behind hardcap."}]
  }'
echo

echo "== streamed chat completion (server-sent events) =="
curl -sS -N --fail-with-body "$BASE_URL/chat/completions" \
  -H "Authorization: Bearer $OPENAI_API_KEY" \
  -H "Content-Type: application/json" \
  -d '{
    "model": "gpt-4o-mini",
    "max_completion_tokens": 64,
    "stream": true,
    "stream_options": {"include_usage": true},
    "messages": [{"role": "user", "content": "Say hello from behind hardcap."}]
  }'
