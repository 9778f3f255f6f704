// @ag-ui/client's HttpAgent against Apex's /api/agui. It runs one message and prints one JSON line with what it saw: every
// event's type in order, the events @ag-ui/core's own zod schema rejected, the answer and the ids of RUN_STARTED.
// Usage: node agui-client.mjs <node_modules dir> <base url> <access token> <message> [threadId] [abort-after-event-type]
// With abort-after-event-type the run is aborted (abortRun) as soon as an event of that type arrives.
const [modules, base, token, message, threadId, abortAfter] = process.argv.slice(2);
const { HttpAgent } = await import(`${modules}/@ag-ui/client/dist/index.mjs`);
const { EventSchema } = await import(`${modules}/@ag-ui/core/dist/schemas.mjs`);

const agent = new HttpAgent({
  url: new URL("api/agui", base).toString(),
  headers: { Authorization: `Bearer ${token}` },
  threadId: threadId || "client-chosen-thread",
  initialMessages: [{ id: "m1", role: "user", content: message }],
});
const types = [], invalid = [];
let started = null, aborted = false, error = null;
try {
  const result = await agent.runAgent({ runId: "client-run" }, {
    onEvent({ event }) {
      types.push(event.type);
      const checked = EventSchema.safeParse(event);
      if (!checked.success) invalid.push({ type: event.type, issues: checked.error.issues.map(i => i.message) });
      if (event.type === "RUN_STARTED") started = { threadId: event.threadId, runId: event.runId };
      if (abortAfter && event.type === abortAfter && !aborted) { aborted = true; agent.abortRun(); }
    },
  });
  const answer = result.newMessages.filter(m => m.role === "assistant" && typeof m.content === "string").map(m => m.content).join("");
  console.log(JSON.stringify({ types, invalid, started, answer, aborted, error }));
} catch (e) {
  error = String(e?.message ?? e);
  console.log(JSON.stringify({ types, invalid, started, answer: "", aborted, error }));
}
