// The openai npm client against Apex's /v1: chat completions streamed and not, responses streamed and not, and a wrong key.
// Prints one JSON line with what it saw. Usage: node openai-client.mjs <node_modules dir> <base url> <access token>
const [modules, base, token] = process.argv.slice(2);
const { default: OpenAI } = await import(`${modules}/openai/index.mjs`);
const client = new OpenAI({ apiKey: token, baseURL: new URL("v1", base).toString(), maxRetries: 0 });

const models = (await client.models.list()).data.map(m => m.id);

const { data: chat, response: chatResponse } = await client.chat.completions
  .create({ model: "apex", messages: [{ role: "user", content: "Hello! What can you do?" }] }).withResponse();

let streamedChat = "", finishReason = null, chatUsage = null, chunks = 0;
for await (const chunk of await client.chat.completions.create({
  model: "apex", stream: true, stream_options: { include_usage: true }, messages: [{ role: "user", content: "Hello! What can you do?" }],
})) {
  chunks++;
  if (chunk.object !== "chat.completion.chunk") throw new Error(`unexpected chunk object ${chunk.object}`);
  for (const choice of chunk.choices) {
    streamedChat += choice.delta?.content ?? "";
    if (choice.finish_reason) finishReason = choice.finish_reason;
  }
  if (chunk.usage) chatUsage = chunk.usage;
}

const response = await client.responses.create({ model: "apex", input: "Hello! What can you do?" });

const responseEvents = [];
let streamedResponse = "", completed = null;
for await (const event of await client.responses.create({ model: "apex", input: [{ role: "user", content: "Hello! What can you do?" }], stream: true })) {
  responseEvents.push(event.type);
  if (event.type === "response.output_text.delta") streamedResponse += event.delta;
  if (event.type === "response.completed") completed = event.response;
}

let wrongKey = null;
try {
  await new OpenAI({ apiKey: "not-a-key", baseURL: new URL("v1", base).toString(), maxRetries: 0 }).chat.completions
    .create({ model: "apex", messages: [{ role: "user", content: "hi" }] });
} catch (e) {
  wrongKey = { status: e.status ?? null, code: e.code ?? null, type: e.type ?? null, isAuthError: e instanceof OpenAI.AuthenticationError };
}

console.log(JSON.stringify({
  models,
  chat: { content: chat.choices[0].message.content, finishReason: chat.choices[0].finish_reason, usage: chat.usage,
    threadId: chatResponse.headers.get("x-apex-thread-id"), runId: chatResponse.headers.get("x-apex-run-id") },
  streamedChat: { content: streamedChat, finishReason, usage: chatUsage, chunks },
  response: { text: response.output_text, status: response.status, usage: response.usage },
  streamedResponse: { text: streamedResponse, events: responseEvents, completedText: completed?.output_text ?? completed?.output?.[0]?.content?.[0]?.text ?? null },
  wrongKey,
}));
