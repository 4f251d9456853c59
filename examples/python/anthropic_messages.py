"""Anthropic Python SDK through hardcap: a plain and a streamed message.

    pip install anthropic
    export ANTHROPIC_API_KEY=hc_...                     # a hardcap token, not a provider key
    export ANTHROPIC_BASE_URL=http://127.0.0.1:8787    # optional; this is the default here (no /v1)
    python examples/python/anthropic_messages.py

Anthropic() reads ANTHROPIC_BASE_URL and ANTHROPIC_API_KEY by itself; they are
passed explicitly below only to show that nothing else changes. hardcap needs
an anthropic provider configured (the --demo provider is OpenAI only).
"""

import os

from anthropic import Anthropic

client = Anthropic(
    base_url=os.environ.get("ANTHROPIC_BASE_URL", "http://127.0.0.1:8787"),
    api_key=os.environ["ANTHROPIC_API_KEY"],  # the hardcap token (hc_...)
)

messages = [{"role": "user", "content": "Say hello from behind hardcap."}]

print("== message ==")
message = client.messages.create(
    model="claude-haiku-4-5",
    max_tokens=64,
    messages=messages,
)
print("".join(block.text for block in message.content if block.type == "text"))
print(f"(usage: {message.usage.input_tokens} input + {message.usage.output_tokens} output tokens)")

print("== streamed message ==")
with client.messages.stream(
    model="claude-haiku-4-5",
    max_tokens=64,
    messages=messages,
) as stream:
    for text in stream.text_stream:
        print(text, end="", flush=True)
    final = stream.get_final_message()
print(f"\n(usage: {final.usage.input_tokens} input + {final.usage.output_tokens} output tokens)")
