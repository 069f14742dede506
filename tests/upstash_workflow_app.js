// An unchanged Upstash Workflow app (@upstash/workflow's serve) on 127.0.0.1, run against this
// server: node upstash_workflow_app.js BASE TOKEN (from a folder where @upstash/workflow is
// installed; tests/test_upstash_workflow.py). One run goes through context.run, context.sleep,
// a waitForEvent that is notified and one that times out; a second run is cancelled while it
// waits. Prints one JSON line: what the steps did, what the client calls answered.
const http = require("node:http");
const { serve, Client: WorkflowClient } = require("@upstash/workflow");
const { Client, Receiver } = require("@upstash/qstash");

const [baseUrl, token] = process.argv.slice(2);
const ran = []; // each step's side effect, as it ran
const finished = []; // each run's result, as its last invocation saw it
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(what, read, timeout = 30000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = await read();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

(async () => {
  const keys = await (
    await fetch(`${baseUrl}/v2/keys`, { headers: { Authorization: `Bearer ${token}` } })
  ).json();
  const server = http.createServer();
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${server.address().port}/workflow`;

  const { handler } = serve(
    async (context) => {
      const { n, order } = context.requestPayload;
      const doubled = await context.run("double", () => {
        ran.push(`double ${order}`);
        return n * 2;
      });
      await context.sleep("nap", 1);
      const approval = await context.waitForEvent("approval", `approve-${order}`, { timeout: "30s" });
      const never = await context.waitForEvent("never", `never-${order}`, { timeout: "1s" });
      const result = await context.run("finish", () => {
        ran.push(`finish ${order}`);
        return { doubled, approved: approval.eventData, approvalTimedOut: approval.timeout, neverTimedOut: never.timeout };
      });
      finished.push({ runId: context.workflowRunId, result });
    },
    {
      url,
      qstashClient: new Client({ baseUrl, token }),
      receiver: new Receiver({ currentSigningKey: keys.current, nextSigningKey: keys.next }),
    },
  );
  server.on("request", async (req, res) => {
    const chunks = [];
    for await (const chunk of req) chunks.push(chunk);
    const body = Buffer.concat(chunks);
    const request = new Request(url, {
      method: req.method,
      headers: req.headers,
      body: req.method === "GET" || req.method === "HEAD" ? undefined : body,
    });
    const response = await handler(request);
    res.writeHead(response.status, Object.fromEntries(response.headers));
    res.end(Buffer.from(await response.arrayBuffer()));
  });

  const client = new WorkflowClient({ baseUrl, token });
  const out = {};
  const first = await client.trigger({ url, body: { n: 21, order: "o1" } });
  const second = await client.trigger({ url, body: { n: 5, order: "o2" } });
  out.runIds = [first.workflowRunId, second.workflowRunId];
  out.waiters = await until("the first run's wait", async () => {
    const found = await client.getWaiters({ eventId: "approve-o1" });
    return found.length ? found : null;
  });
  out.notified = await client.notify({ eventId: "approve-o1", eventData: { by: "ops" } });
  await until("the second run's wait", async () => (await client.getWaiters({ eventId: "approve-o2" })).length);
  out.cancel = await client.cancel({ ids: [second.workflowRunId] });
  out.notifiedAfterCancel = await client.notify({ eventId: "approve-o2", eventData: { by: "late" } });
  await until("the first run's end", () => finished.length > 0);
  await sleep(1500); // nothing more runs
  console.log(JSON.stringify({ ...out, ran, finished }));
  server.close();
  process.exit(0);
})().catch((error) => {
  console.error(error);
  process.exit(1);
});
