// OpenAI Node SDK (openai v4 and later) through hardcap: a plain and a streamed chat completion.
//
//   cd examples/node && npm install
//   export OPENAI_API_KEY=hc_...                        # a hardcap token, not a provider key
//   export OPENAI_BASE_URL=http://127.0.0.1:8787/v1    # optional; this is the default here
//   node openai_chat.mjs
//
// new OpenAI() reads OPENAI_BASE_URL and OPENAI_API_KEY by itself; they are
// passed explicitly below only to show that nothing else changes.
import OpenAI from "openai";

const client = new OpenAI({
  baseURL: process.env.OPENAI_BASE_URL ?? "http://127.0.0.1:8787/v1",
  apiKey: process.env.OPENAI_API_KEY, // the hardcap token (hc_...)
});

const messages = [{ role: "user", content: "Say hello from behind hardcap." }];

console.log("== chat completion ==");
const resp = await client.chat.completions.create({
  model: "gpt-4o-mini",
  messages,
  max_completion_tokens: 64,
});
console.log(resp.choices[0].message.content);
console.log(`(usage: ${resp.usage.prompt_tokens} prompt + ${resp.usage.completion_tokens} completion tokens)`);

console.log("== streamed chat completion ==");
const stream = await client.chat.completions.create({
  model: "gpt-4o-mini",
  messages,
  max_completion_tokens: 64,
  stream: true,
  stream_options: { include_usage: true },
});
for await (const chunk of stream) {
  process.stdout.write(chunk.choices[0]?.delta?.content ?? "");
  if (chunk.usage) {
    console.log(`\n(usage: ${chunk.usage.prompt_tokens} prompt + ${chunk.usage.completion_tokens} completion tokens)`);
  }
}
