"""OpenAI Python SDK (openai>=1) through hardcap: a plain and a streamed chat completion.

    pip install openai
    export OPENAI_API_KEY=hc_...                        # a hardcap token, not a provider key
    export OPENAI_BASE_URL=http://127.0.0.1:8787/v1    # optional; this is the default here
    python examples/python/openai_chat.py

OpenAI() reads OPENAI_BASE_URL and OPENAI_API_KEY by itself; they are passed
explicitly below only to show that nothing else changes.
"""

import os

from openai import OpenAI

client = OpenAI(
    base_url=os.environ.get("OPENAI_BASE_URL", "http://127.0.0.1:8787/v1"),
    api_key=os.environ["OPENAI_API_KEY"],  # the hardcap token (hc_...)
)

messages = [{"role": "user", "content": "Say hello from behind hardcap."}]

print("== chat completion ==")
resp = client.chat.completions.create(
    model="gpt-4o-mini",
    messages=messages,
    max_completion_tokens=64,
)
print(resp.choices[0].message.content)
print(f"(usage: {resp.usage.prompt_tokens} prompt + {resp.usage.completion_tokens} completion tokens)")

print("== streamed chat completion ==")
stream = client.chat.completions.create(
    model="gpt-4o-mini",
    messages=messages,
    max_completion_tokens=64,
    stream=True,
    stream_options={"include_usage": True},
)
for chunk in stream:
    if chunk.choices and chunk.choices[0].delta.content:
        print(chunk.choices[0].delta.content, end="", flush=True)
    if chunk.usage:
        print(f"\n(usage: {chunk.usage.prompt_tokens} prompt + {chunk.usage.completion_tokens} completion tokens)")
