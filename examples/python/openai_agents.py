"""OpenAI Agents SDK (openai-agents) through hardcap, with tracing off.

    pip install openai-agents
    export OPENAI_API_KEY=hc_...                        # a hardcap token, not a provider key
    export OPENAI_BASE_URL=http://127.0.0.1:8787/v1    # optional; this is the default here
    export OPENAI_AGENTS_DISABLE_TRACING=1             # belt and braces: the code below disables it too
    python examples/python/openai_agents.py

Why tracing must be off: the Agents SDK exports traces to OpenAI's own
servers (api.openai.com/v1/traces/ingest, not the base URL) with the key it
was given, here the hardcap token. That would send the token to a third
party and the traces (prompts and replies) with it. Either disable tracing
(OPENAI_AGENTS_DISABLE_TRACING=1 or set_tracing_disabled(True)) or point it
elsewhere: add your own trace processor with set_trace_processors([...]), or
give the exporter a key of its own with set_tracing_export_api_key(...).
"""

import os

from agents import Agent, Runner, set_default_openai_client, set_tracing_disabled
from openai import AsyncOpenAI

# Before any run: no trace leaves this process.
set_tracing_disabled(True)

client = AsyncOpenAI(
    base_url=os.environ.get("OPENAI_BASE_URL", "http://127.0.0.1:8787/v1"),
    api_key=os.environ["OPENAI_API_KEY"],  # the hardcap token (hc_...)
)
# use_for_tracing=False: the token is never handed to the trace exporter.
set_default_openai_client(client, use_for_tracing=False)

agent = Agent(
    name="hardcap demo",
    instructions="Answer in one sentence.",
    model="gpt-4o-mini",  # the demo provider serves it; the Agents SDK calls the Responses API
)

result = Runner.run_sync(agent, "Say hello from behind hardcap.")
print(result.final_output)
for response in result.raw_responses:
    u = response.usage
    print(f"(usage: {u.input_tokens} input + {u.output_tokens} output tokens)")
