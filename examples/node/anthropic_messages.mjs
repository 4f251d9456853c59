// Anthropic TypeScript/Node SDK (@anthropic-ai/sdk) through hardcap: a plain and a streamed message.
//
//   cd examples/node && npm install
//   export ANTHROPIC_API_KEY=hc_...                     # a hardcap token, not a provider key
//   export ANTHROPIC_BASE_URL=http://127.0.0.1:8787    # optional; this is the default here (no /v1)
//   node anthropic_messages.mjs
//
// new Anthropic() reads ANTHROPIC_BASE_URL and ANTHROPIC_API_KEY by itself;
// they are passed explicitly below only to show that nothing else changes.
// hardcap needs an anthropic provider configured (the --demo provider is OpenAI only).
import Anthropic from "@anthropic-ai/sdk";

const client = new Anthropic({
  baseURL: process.env.ANTHROPIC_BASE_URL ?? "http://127.0.0.1:8787",
  apiKey: process.env.ANTHROPIC_API_KEY, // the hardcap token (hc_...)
});

const messages = [{ role: "user", content: "Say hello from behind hardcap." }];

console.log("== message ==");
const message = await client.messages.create({
  model: "claude-haiku-4-5",
  max_tokens: 64,
  messages,
});
console.log(message.content.filter((b) => b.type === "text").map((b) => b.text).join(""));
console.log(`(usage: ${message.usage.input_tokens} input + ${message.usage.output_tokens} output tokens)`);

console.log("== streamed message ==");
const stream = client.messages.stream({
  model: "claude-haiku-4-5",
  max_tokens: 64,
  messages,
});
stream.on("text", (text) => process.stdout.write(text));
const final = await stream.finalMessage();
console.log(`\n(usage: ${final.usage.input_tokens} input + ${final.usage.output_tokens} output tokens)`);
