// Every public method of the npm SDK (@upstash/qstash, pinned in
// tests/test_qstash_conformance_js.py) against the API: node qstash_conformance.js BASE TOKEN
// Run from a folder where the SDK is installed. Deliveries go to an HTTP server of this
// script on 127.0.0.1 and are verified with the stock Receiver. Prints one JSON line:
// {"results": {method: {"ok": bool, "error": str}}, "untested": [methods with no check]}.
const http = require("node:http");
const assert = require("node:assert/strict");
const { Client, Receiver, custom, upstash } = require("@upstash/qstash");

const [baseUrl, token] = process.argv.slice(2);
const client = new Client({ baseUrl, token, retry: false });

// --- a local receiver -----------------------------------------------------------------------
const hits = [];
const answers = {}; // path -> [status, body] for every delivery to it
const server = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (chunk) => chunks.push(chunk));
  req.on("end", () => {
    const bare = req.url.split("?")[0];
    hits.push({ path: req.url, bare, headers: req.headers, body: Buffer.concat(chunks).toString() });
    const [status, body] = answers[bare] || [200, "ok"];
    res.writeHead(status, { "content-type": "text/plain" });
    res.end(body);
  });
});
let hook = "";
const at = (path) => hits.filter((hit) => hit.bare === path);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(what, read, timeout = 20000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = await read();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

let stock; // the stock Receiver, with the keys GET /v2/keys hands out
async function delivered(path, count = 1) {
  const found = await until(`${count} deliveries to ${path} (got ${at(path).length})`, () =>
    at(path).length >= count ? at(path) : null,
  );
  for (const hit of found) {
    assert.equal(
      await stock.verify({ signature: hit.headers["upstash-signature"], body: hit.body, url: hook + hit.path }),
      true,
    );
  }
  return found;
}

const later = (path = "/later", extra = {}) =>
  client.publishJSON({ url: hook + path, body: {}, delay: 3600, ...extra });

async function gone(messageId) {
  try {
    await client.messages.get(messageId);
    return false;
  } catch (error) {
    return /404|not found|cancelled/i.test(String(error));
  }
}

async function refused(call, status, pattern) {
  try {
    await call();
  } catch (error) {
    assert.match(String(error), pattern);
    if (status) assert.equal(error.status, status, String(error));
    return;
  }
  throw new Error("expected an error");
}

async function deadLetter(path) {
  answers[path] = [500, "broken"];
  const sent = await client.publishJSON({ url: hook + path, body: {}, retries: 0 });
  const entry = await until(`the DLQ entry of ${path}`, async () =>
    (await client.dlq.listMessages()).messages.find((m) => m.messageId === sent.messageId),
  );
  return entry;
}

async function urlGroupChecks(api, group) {
  return {
    addEndpoints: async () => {
      await api.addEndpoints({ name: group, endpoints: [{ url: hook + `/${group}1`, name: "one" }, { url: hook + `/${group}2` }] });
      const results = await client.publishJSON({ urlGroup: group, body: { g: 1 } });
      assert.equal(results.length, 2);
      const [[first], [second]] = [await delivered(`/${group}1`), await delivered(`/${group}2`)];
      assert.equal(first.headers["upstash-topic-name"], group);
      assert.equal(JSON.parse(second.body).g, 1);
    },
    get: async () => {
      const got = await api.get(group);
      assert.equal(got.name, group);
      assert.deepEqual(got.endpoints.map((e) => e.url), [hook + `/${group}1`, hook + `/${group}2`]);
    },
    list: async () => assert.ok((await api.list()).some((g) => g.name === group)),
    removeEndpoints: async () => {
      await api.removeEndpoints({ name: group, endpoints: [{ name: "one" }] });
      assert.deepEqual((await api.get(group)).endpoints.map((e) => e.url), [hook + `/${group}2`]);
    },
    delete: async () => {
      await api.delete(group);
      assert.ok(!(await api.list()).some((g) => g.name === group));
    },
  };
}

// --- one check per method, run in this order --------------------------------------------------
async function checks() {
  const c = {};
  // The cancel-everything methods first, while nothing else waits.
  c["messages.deleteAll"] = async () => {
    const ids = [(await later()).messageId, (await later()).messageId];
    assert.equal(await client.messages.deleteAll(), 2);
    for (const id of ids) assert.ok(await gone(id));
  };
  c["messages.cancel"] = async () => {
    const one = await later();
    assert.deepEqual(await client.messages.cancel(one.messageId), { cancelled: 1 });
    assert.ok(await gone(one.messageId));
    const two = [(await later()).messageId, (await later()).messageId];
    assert.deepEqual(await client.messages.cancel(two), { cancelled: 2 });
    for (const path of ["/bulk", "/bulk", "/keep"]) await later(path, { label: "bulk" });
    const host = new URL(hook).hostname;
    assert.deepEqual(await client.messages.cancel({ filter: { host, path: "/bulk" } }), { cancelled: 2 });
    assert.deepEqual(await client.messages.cancel({ filter: { label: "bulk" } }), { cancelled: 1 });
    await later();
    assert.deepEqual(await client.messages.cancel({ all: true }), { cancelled: 1 });
  };
  c["messages.delete"] = async () => {
    const one = await later();
    await client.messages.delete(one.messageId);
    assert.ok(await gone(one.messageId));
  };
  c["messages.deleteMany"] = async () => {
    const ids = [(await later()).messageId, (await later()).messageId];
    assert.equal(await client.messages.deleteMany(ids), 2);
  };
  c["messages.get"] = async () => {
    const one = await later("/got", { headers: { "X-Trace": "t1" }, retries: 2 });
    const message = await client.messages.get(one.messageId);
    assert.equal(message.messageId, one.messageId);
    assert.equal(message.url, hook + "/got");
    assert.equal(message.maxRetries, 2);
    assert.deepEqual(message.header["X-Trace"], ["t1"]);
    await client.messages.cancel(one.messageId);
  };
  c.publish = async () => {
    const sent = await client.publish({ url: hook + "/pub?a=1&b=two%20words", body: "plain", headers: { "X-From": "js", "Content-Type": "text/plain" } });
    const [hit] = await delivered("/pub");
    assert.equal(hit.path, "/pub?a=1&b=two%20words");
    assert.equal(hit.body, "plain");
    assert.equal(hit.headers["x-from"], "js");
    assert.equal(hit.headers["upstash-message-id"], sent.messageId);
    assert.ok(!Object.keys(hit.headers).some((name) => name.startsWith("upstash-telemetry")));
  };
  c.publishJSON = async () => {
    const sent = await client.publishJSON({ url: hook + "/pubjson", body: { js: 1 }, deduplicationId: "js-d1" });
    const again = await client.publishJSON({ url: hook + "/pubjson", body: { js: 1 }, deduplicationId: "js-d1" });
    assert.equal(again.messageId, sent.messageId);
    assert.equal(again.deduplicated, true);
    const [hit] = await delivered("/pubjson");
    assert.deepEqual(JSON.parse(hit.body), { js: 1 });
    assert.equal(hit.headers["content-type"], "application/json");
  };
  c["publishJSON: retries, callback, failureCallback"] = async () => {
    // Two attempts (retries: 1), both refused: one callback per attempt, one failure callback.
    answers["/flaky"] = [500, "no"];
    await client.publishJSON({
      url: hook + "/flaky", body: {}, retries: 1, retryDelay: "200",
      callback: hook + "/callback", failureCallback: hook + "/failure",
    });
    await delivered("/failure");
    await delivered("/callback", 2);
    await sleep(1500); // nothing more comes
    assert.equal(at("/flaky").length, 2);
    assert.equal(at("/callback").length, 2);
    assert.equal(at("/failure").length, 1);
  };
  c.batch = async () => {
    const sent = await client.batch([{ url: hook + "/b1", body: "one" }, { url: hook + "/b2", body: "two", headers: { "X-N": "2" } }]);
    assert.equal(sent.length, 2);
    const [[one], [two]] = [await delivered("/b1"), await delivered("/b2")];
    assert.equal(one.body, "one");
    assert.equal(two.headers["x-n"], "2");
  };
  c.batchJSON = async () => {
    await client.batchJSON([{ url: hook + "/bj1", body: { b: 1 } }, { url: hook + "/bj2", body: { b: 2 } }]);
    const [[one], [two]] = [await delivered("/bj1"), await delivered("/bj2")];
    assert.deepEqual([JSON.parse(one.body), JSON.parse(two.body)], [{ b: 1 }, { b: 2 }]);
  };
  c.logs = async () => {
    const sent = await client.publishJSON({ url: hook + "/logged", body: {} });
    await delivered("/logged");
    const logs = await until("the DELIVERED log", async () => {
      const found = await client.logs({ filter: { messageId: sent.messageId } });
      return found.logs.some((log) => log.state === "DELIVERED") ? found.logs : null;
    });
    assert.ok(logs.every((log) => log.messageId === sent.messageId));
  };
  c.events = async () => {
    const one = await later();
    await client.messages.cancel(one.messageId);
    const found = await client.events({ filter: { messageId: one.messageId } });
    assert.deepEqual(found.events.map((e) => e.state), ["CANCELED", "CREATED"]);
  };
  const queue = client.queue({ queueName: "jsq" });
  c["queue.upsert"] = async () => {
    await queue.upsert({ parallelism: 2 });
    assert.equal((await queue.get()).parallelism, 2);
  };
  c["queue.get"] = async () => {
    const got = await queue.get();
    assert.equal(got.name, "jsq");
    assert.equal(got.paused, false);
  };
  c["queue.list"] = async () => assert.ok((await queue.list()).some((q) => q.name === "jsq"));
  c["queue.enqueue"] = async () => {
    const sent = await queue.enqueue({ url: hook + "/jsq", body: "queued" });
    const [hit] = await delivered("/jsq");
    assert.equal(hit.headers["upstash-message-id"], sent.messageId);
  };
  c["queue.enqueueJSON"] = async () => {
    await queue.enqueueJSON({ url: hook + "/jsqj", body: { q: 1 } });
    const [hit] = await delivered("/jsqj");
    assert.deepEqual(JSON.parse(hit.body), { q: 1 });
  };
  c["queue.pause"] = async () => {
    await queue.pause();
    assert.equal((await queue.get()).paused, true);
    await queue.enqueueJSON({ url: hook + "/held", body: {} });
    await sleep(1500);
    assert.equal(at("/held").length, 0);
  };
  c["queue.resume"] = async () => {
    await queue.resume();
    assert.equal((await queue.get()).paused, false);
    await delivered("/held");
  };
  c["queue.delete"] = async () => {
    await queue.delete();
    assert.ok(!(await queue.list()).some((q) => q.name === "jsq"));
  };
  let scheduleId;
  c["schedules.create"] = async () => {
    ({ scheduleId } = await client.schedules.create({ destination: hook + "/cron", cron: "CRON_TZ=Europe/Paris */5 * * * *", body: "tick" }));
    assert.match(scheduleId, /^scd_/);
  };
  c["schedules.get"] = async () => {
    const got = await client.schedules.get(scheduleId);
    assert.equal(got.cron, "CRON_TZ=Europe/Paris */5 * * * *");
    assert.equal(got.destination, hook + "/cron");
  };
  c["schedules.list"] = async () => assert.ok((await client.schedules.list()).some((s) => s.scheduleId === scheduleId));
  c["schedules.pause"] = async () => {
    await client.schedules.pause({ schedule: scheduleId });
    assert.equal((await client.schedules.get(scheduleId)).isPaused, true);
  };
  c["schedules.resume"] = async () => {
    await client.schedules.resume({ schedule: scheduleId });
    assert.ok(!(await client.schedules.get(scheduleId)).isPaused);
  };
  c["schedules.delete"] = async () => {
    await client.schedules.delete(scheduleId);
    await refused(() => client.schedules.get(scheduleId), 404, /not found/);
  };
  for (const [api, group] of [["urlGroups", "jsgroup"], ["topics", "jstopic"]]) {
    for (const [name, check] of Object.entries(await urlGroupChecks(client[api], group))) {
      c[`${api}.${name}`] = check;
    }
  }
  let entry;
  c["dlq.listMessages"] = async () => {
    entry = await deadLetter("/dead");
    assert.equal(entry.url, hook + "/dead");
    assert.equal(entry.responseStatus, 500);
    const filtered = await client.dlq.listMessages({ filter: { url: hook + "/dead" } });
    assert.deepEqual(filtered.messages.map((m) => m.dlqId), [entry.dlqId]);
  };
  c["dlq.retry"] = async () => {
    const { responses } = await client.dlq.retry([entry.dlqId]);
    assert.equal(responses.length, 1);
    const [, second] = await delivered("/dead", 2);
    assert.equal(second.headers["upstash-message-id"], responses[0].messageId);
    assert.ok(!(await client.dlq.listMessages()).messages.some((m) => m.dlqId === entry.dlqId));
  };
  c["dlq.delete"] = async () => {
    const one = await deadLetter("/dead2");
    assert.deepEqual(await client.dlq.delete(one.dlqId), { deleted: 1 });
    assert.ok(!(await client.dlq.listMessages()).messages.some((m) => m.dlqId === one.dlqId));
  };
  c["dlq.deleteMany"] = async () => {
    const ids = [(await deadLetter("/dead3")).dlqId, (await deadLetter("/dead4")).dlqId];
    assert.deepEqual(await client.dlq.deleteMany({ dlqIds: ids }), { deleted: 2 });
  };
  const flow = { key: "js-fc", parallelism: 2, rate: 5, period: 60 };
  c["flowControl.get"] = async () => {
    await later("/fc", { flowControl: flow });
    const got = await client.flowControl.get("js-fc");
    assert.equal(got.flowControlKey, "js-fc");
    assert.equal(got.parallelismMax, 2);
    assert.equal(got.rateMax, 5);
    await refused(() => client.flowControl.get("no-such-key"), 404, /not found/);
  };
  c["flowControl.getGlobalParallelism"] = async () => {
    const got = await client.flowControl.getGlobalParallelism();
    assert.equal(got.parallelismMax, 0);
    assert.equal(typeof got.parallelismCount, "number");
  };
  c["flowControl.pause"] = async () => {
    await client.flowControl.pause("js-fc");
    assert.equal((await client.flowControl.get("js-fc")).isPaused, true);
  };
  c["flowControl.resume"] = async () => {
    await client.flowControl.resume("js-fc");
    assert.equal((await client.flowControl.get("js-fc")).isPaused, false);
  };
  c["flowControl.pin"] = async () => {
    await client.flowControl.pin("js-fc", { parallelism: 1, rate: 10, period: 30 });
    await later("/fc", { flowControl: { ...flow, parallelism: 4 } });
    const got = await client.flowControl.get("js-fc");
    assert.deepEqual([got.parallelismMax, got.rateMax, got.ratePeriod], [1, 10, 30]);
    assert.equal(got.isPinnedParallelism && got.isPinnedRate, true);
  };
  c["flowControl.unpin"] = async () => {
    await client.flowControl.unpin("js-fc", { parallelism: true, rate: true });
    let got = await client.flowControl.get("js-fc");
    assert.equal(got.isPinnedParallelism || got.isPinnedRate, false);
    await later("/fc", { flowControl: { ...flow, parallelism: 4 } }); // publishes set it again
    got = await until("the publish's parallelism", async () => {
      const now = await client.flowControl.get("js-fc");
      return now.parallelismMax === 4 ? now : null;
    });
    assert.equal(got.rateMax, 5);
  };
  c["flowControl.resetRate"] = async () => {
    // Two an hour: the third waits for the hour, or for a reset.
    const rated = { key: "js-rate", rate: 2, period: 3600 };
    for (let n = 0; n < 3; n++) await client.publishJSON({ url: hook + "/rated", body: { n }, flowControl: rated });
    await delivered("/rated", 2);
    const before = await client.flowControl.get("js-rate");
    assert.deepEqual([before.rateCount, before.waitListSize], [2, 1]);
    await client.flowControl.resetRate("js-rate");
    await delivered("/rated", 3);
    await refused(() => client.flowControl.resetRate("no-such-key"), 404, /not found/);
  };
  c["chat.getAuthorizationToken"] = async () => assert.equal(client.chat().getAuthorizationToken(), token);
  c["chat.create"] = async () => {
    await refused(
      () => client.chat().create({ provider: upstash(), model: "meta-llama/Meta-Llama-3-8B-Instruct", messages: [{ role: "user", content: "hi" }] }),
      501, /LLM API .* not offered/,
    );
  };
  c["chat.prompt"] = async () => {
    await refused(
      () => client.chat().prompt({ provider: upstash(), model: "meta-llama/Meta-Llama-3-8B-Instruct", system: "terse", user: "hi" }),
      501, /LLM API .* not offered/,
    );
  };
  c["chat.createThirdParty"] = async () => {
    // The SDK calls the provider itself, not QStash: here a provider on the local receiver.
    answers["/provider/v1/chat/completions"] = [200, JSON.stringify({ id: "c1", choices: [] })];
    const answer = await client.chat().createThirdParty({
      provider: custom({ baseUrl: hook + "/provider", token: "provider-token" }),
      model: "m", messages: [{ role: "user", content: "hi" }],
    });
    assert.equal(answer.id, "c1");
    const [hit] = at("/provider/v1/chat/completions");
    assert.equal(hit.headers.authorization, "Bearer provider-token");
  };
  c["workflow.cancel"] = async () => {
    // An Upstash Workflow run (tests/test_upstash_workflow.py runs whole ones): none by that id.
    await refused(() => client.workflow.cancel("wfr_nope"), 404, /workflow run wfr_nope not found/);
  };
  c["Receiver.verify"] = async () => {
    await client.publish({ url: hook + "/verify", body: "exact body", headers: { "Content-Type": "text/plain" } });
    const [hit] = await delivered("/verify");
    const signature = hit.headers["upstash-signature"];
    await refused(() => stock.verify({ signature, body: "other body", url: hook + "/verify" }), 0, /hash|body|invalid/i);
    await refused(() => stock.verify({ signature, body: "exact body", url: hook + "/other" }), 0, /url|invalid/i);
  };
  return c;
}

// The public methods of the SDK, as a user sees them: the client's and its API groups'.
function publicMethods() {
  const own = (object) =>
    [...Object.getOwnPropertyNames(Object.getPrototypeOf(object)), ...Object.keys(object)].filter(
      (name) => name !== "constructor" && !name.startsWith("_") && typeof object[name] === "function",
    );
  const groups = {
    messages: client.messages, dlq: client.dlq, schedules: client.schedules, urlGroups: client.urlGroups,
    topics: client.topics, flowControl: client.flowControl, queue: client.queue({ queueName: "x" }),
    chat: client.chat(), workflow: client.workflow,
  };
  const methods = own(client).filter((name) => !(name in groups));
  for (const [group, api] of Object.entries(groups)) methods.push(...own(api).map((name) => `${group}.${name}`));
  return [...methods, "Receiver.verify"];
}

(async () => {
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  hook = `http://127.0.0.1:${server.address().port}`;
  const keys = await (await fetch(`${baseUrl}/v2/keys`, { headers: { Authorization: `Bearer ${token}` } })).json();
  stock = new Receiver({ currentSigningKey: keys.current, nextSigningKey: keys.next });
  const results = {};
  for (const [name, check] of Object.entries(await checks())) {
    try {
      await check();
      results[name] = { ok: true, error: "" };
    } catch (error) {
      results[name] = { ok: false, error: String(error && error.stack ? error.stack : error) };
    }
  }
  const untested = publicMethods().filter((name) => !(name in results));
  console.log(JSON.stringify({ results, untested }));
  server.close();
  process.exit(0);
})().catch((error) => {
  console.error(error);
  process.exit(1);
});
