// The official TypeScript MCP client against Apex's /mcp: lists the tools, calls workload_summary and ask_apex,
// and prints one JSON line with what it saw. Usage: node mcp-client.mjs <node_modules dir> <base url> <access token>
const [modules, base, token] = process.argv.slice(2);
const { Client } = await import(`${modules}/@modelcontextprotocol/sdk/dist/esm/client/index.js`);
const { StreamableHTTPClientTransport } = await import(`${modules}/@modelcontextprotocol/sdk/dist/esm/client/streamableHttp.js`);

const client = new Client({ name: "apex-test", version: "1.0.0" });
await client.connect(new StreamableHTTPClientTransport(new URL("mcp", base), { requestInit: { headers: { Authorization: `Bearer ${token}` } } }));
const tools = (await client.listTools()).tools.map(t => t.name);
const summary = await client.callTool({ name: "workload_summary", arguments: {} });
const progress = [];
const answer = await client.callTool({ name: "ask_apex", arguments: { question: "Hello! What can you do?" } }, undefined,
  { onprogress: p => progress.push(p.message ?? ""), timeout: 60000 });
console.log(JSON.stringify({ tools, summary: summary.content[0].text, answer: answer.content[0].text, isError: answer.isError ?? false, progress }));
await client.close();
