// End-to-end test of @hookferry/client against a real hookferry.
//
// It needs HOOKFERRY_BIN, the path to a built hookferry binary (check.sh builds
// one), and openssl on PATH for the receiver's self-signed certificate. It runs
// the compiled package in dist/ (`npm test` builds it first).
//
// The flow: a local HTTPS receiver (node:https) and a hookferry server on a fresh
// SQLite database in a temp dir; through the typed client, list the event types,
// register a webhook on the receiver, publish an event, receive the delivery,
// verify its signature with verifyWebhook, find it DELIVERED in the delivery log,
// and get typed errors back for a bad event type and a bad token.
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { after, before, describe, it } from "node:test";

import { createHookferryClient, InvalidWebhookError, verifyWebhook } from "../dist/index.js";

const BIN = process.env.HOOKFERRY_BIN;
const WAIT_MS = 30_000;

/** Polls fn until it returns a truthy value or WAIT_MS pass. */
async function eventually(what, fn, timeoutMs = WAIT_MS) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    last = await fn();
    if (last) return last;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A self-signed certificate for 127.0.0.1, made with openssl. */
function makeCertificate(dir) {
  try {
    execFileSync("openssl", ["version"], { stdio: "pipe" });
  } catch (err) {
    throw new Error(`openssl is needed to make the receiver's certificate and is not runnable: ${err.message}`);
  }
  const key = join(dir, "receiver-key.pem");
  const cert = join(dir, "receiver-cert.pem");
  execFileSync(
    "openssl",
    [
      "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
      "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
      "-days", "1", "-keyout", key, "-out", cert,
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  return { key: readFileSync(key), cert: readFileSync(cert), certFile: cert };
}

/** An HTTPS receiver that records every request and answers 204. */
async function startReceiver(tls) {
  const received = [];
  const server = createServer({ key: tls.key, cert: tls.cert }, (req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      received.push({
        method: req.method,
        url: req.url,
        headers: req.headers,
        body: Buffer.concat(chunks).toString("utf8"),
      });
      res.writeHead(204).end();
    });
  });
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  return { server, received, port: server.address().port };
}

/** The environment of the hookferry processes: ours, minus inherited HOOKFERRY_ settings. */
function hookferryEnv(extra) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith("HOOKFERRY_")) env[k] = v;
  }
  return { ...env, ...extra };
}

function createToken(env, user, ...permissions) {
  const args = ["token", "create", "--tenant", "acme", "--user", user];
  for (const p of permissions) args.push("--permission", p);
  const token = execFileSync(BIN, args, { env, stdio: ["ignore", "pipe", "pipe"], encoding: "utf8" }).trim();
  assert.match(token, /^hf_\S+$/, `token create printed ${JSON.stringify(token)}`);
  return token;
}

/** Starts `hookferry serve` and resolves with the address from its "hookferry listening" log line. */
function startServer(env) {
  const proc = spawn(BIN, ["serve", "--addr", "127.0.0.1:0", "--log-format", "json"], {
    env,
    stdio: ["ignore", "ignore", "pipe"],
  });
  const log = [];
  const exited = new Promise((resolve) => proc.once("exit", (code, signal) => resolve({ code, signal })));
  const addr = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`hookferry did not log "hookferry listening" within 20 s; log:\n${log.join("\n")}`)), 20_000);
    proc.once("error", (err) => {
      clearTimeout(timer);
      reject(new Error(`cannot start ${BIN}: ${err.message}`));
    });
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`hookferry exited (code ${code}, signal ${signal}) before listening; log:\n${log.join("\n")}`));
    });
    createInterface({ input: proc.stderr }).on("line", (line) => {
      log.push(line);
      let rec;
      try {
        rec = JSON.parse(line);
      } catch {
        return;
      }
      if (rec.msg === "hookferry listening" && typeof rec.addr === "string") {
        clearTimeout(timer);
        resolve(rec.addr);
      }
    });
  });
  return { proc, log, exited, addr };
}

describe("hookferry TypeScript client against a real hookferry", { timeout: 90_000 }, () => {
  let dir;
  let receiver;
  let server;
  let baseUrl;
  let manager; // alice, WEBHOOK_MANAGEMENT
  let publisher; // orders-service, EVENTS_PUBLISH
  let webhook; // the registered webhook, with its secret
  let published; // the published event
  let delivery; // the request the receiver got

  before(async () => {
    assert.ok(BIN, "set HOOKFERRY_BIN to a built hookferry binary (clients/typescript/check.sh builds one)");
    dir = mkdtempSync(join(tmpdir(), "hookferry-ts-e2e-"));
    const tls = makeCertificate(dir);
    receiver = await startReceiver(tls);

    const env = hookferryEnv({
      HOOKFERRY_DATABASE_URL: `sqlite:${join(dir, "hf.db")}`,
      HOOKFERRY_ALLOW_PRIVATE_TARGETS: "true",
      HOOKFERRY_DELIVERY_CA_FILE: tls.certFile,
      HOOKFERRY_SHUTDOWN_TIMEOUT: "5s",
    });
    // The CLI and the server share the SQLite file.
    const managerToken = createToken(env, "alice", "WEBHOOK_MANAGEMENT");
    const publisherToken = createToken(env, "orders-service", "EVENTS_PUBLISH");

    server = startServer(env);
    const addr = await server.addr;
    baseUrl = `http://${addr}`;
    manager = createHookferryClient({ baseUrl, token: managerToken });
    publisher = createHookferryClient({ baseUrl, token: publisherToken });
  });

  after(async () => {
    if (server && server.proc.exitCode === null && server.proc.signalCode === null) {
      server.proc.kill("SIGTERM");
      const timeout = new Promise((r) => setTimeout(() => r("timeout"), 10_000));
      if ((await Promise.race([server.exited, timeout])) === "timeout") {
        server.proc.kill("SIGKILL");
        await server.exited;
      }
    }
    if (receiver) {
      receiver.server.closeAllConnections?.();
      await new Promise((r) => receiver.server.close(r));
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("lists the event types", async () => {
    const { data, error, response } = await manager.GET("/v1/event-types");
    assert.equal(response.status, 200, JSON.stringify(error));
    const names = data.items.map((t) => t.name);
    assert.ok(names.includes("order.created"), `order.created is not in ${names.join(", ")}`);
  });

  it("registers a webhook on the receiver", async () => {
    const url = `https://127.0.0.1:${receiver.port}/hooks`;
    const { data, error, response } = await manager.POST("/v1/webhooks", {
      body: { url, subscription: { event_types: ["order.created"] } },
    });
    assert.equal(response.status, 201, JSON.stringify(error));
    assert.match(data.id, /^wh_/);
    assert.equal(data.url, url);
    assert.equal(data.status, "ACTIVE");
    assert.deepEqual(data.subscription.event_types, ["order.created"]);
    assert.equal(data.authentication?.scheme, "STANDARD_WEBHOOKS");
    assert.match(data.authentication?.secret ?? "", /^whsec_[A-Za-z0-9+/]+=*$/);
    assert.equal(response.headers.get("location"), `/v1/webhooks/${data.id}`);
    webhook = data;
  });

  it("publishes an event", async () => {
    assert.ok(webhook, "no webhook registered");
    const { data, error, response } = await publisher.POST("/v1/events", {
      body: { type: "order.created", data: { order_id: "1042", total: 99.5 } },
    });
    assert.equal(response.status, 202, JSON.stringify(error));
    assert.match(data.id, /^evt_/);
    assert.equal(data.deliveries, 1);
    published = data;
  });

  it("delivers it to the receiver, signed with the webhook's secret", async () => {
    assert.ok(published, "no event published");
    delivery = await eventually("the receiver to get the event", () =>
      receiver.received.find((r) => r.headers["webhook-id"] === published.id),
    );
    assert.equal(delivery.method, "POST");
    assert.equal(delivery.url, "/hooks");
    assert.match(delivery.headers["content-type"] ?? "", /^application\/json/);

    const envelope = verifyWebhook(webhook.authentication.secret, delivery.body, delivery.headers);
    assert.equal(envelope.id, published.id);
    assert.equal(envelope.type, "order.created");
    assert.deepEqual(envelope.data, { order_id: "1042", total: 99.5 });
    assert.ok(!Number.isNaN(Date.parse(envelope.timestamp)), `timestamp ${envelope.timestamp}`);

    // The bare base64 secret, without whsec_, verifies too.
    const bare = webhook.authentication.secret.slice("whsec_".length);
    assert.equal(verifyWebhook(bare, delivery.body, delivery.headers).id, published.id);
  });

  it("rejects a delivery with a wrong secret, a changed body or no signature", () => {
    assert.ok(delivery, "no delivery received");
    const otherSecret = `whsec_${randomBytes(32).toString("base64")}`;
    const rejects = (reason, fn) =>
      assert.throws(fn, (err) => {
        assert.ok(err instanceof InvalidWebhookError, `${err}`);
        assert.equal(err.reason, reason);
        assert.match(err.message, /^hookferry webhook: /);
        return true;
      });
    rejects("signature", () => verifyWebhook(otherSecret, delivery.body, delivery.headers));
    rejects("signature", () => verifyWebhook(webhook.authentication.secret, delivery.body.replace("1042", "1043"), delivery.headers));
    const { ["webhook-signature"]: _, ...unsigned } = delivery.headers;
    rejects("signature", () => verifyWebhook(webhook.authentication.secret, delivery.body, unsigned));
    rejects("secret", () => verifyWebhook("whsec_", delivery.body, delivery.headers));
  });

  it("shows the delivery as DELIVERED in the delivery log", async () => {
    assert.ok(delivery, "no delivery received");
    const item = await eventually("the delivery log to show DELIVERED", async () => {
      const { data, error, response } = await manager.GET("/v1/webhooks/{webhook_id}/deliveries", {
        params: { path: { webhook_id: webhook.id } },
      });
      assert.equal(response.status, 200, JSON.stringify(error));
      return data.items.find((d) => d.event_id === published.id && d.status === "DELIVERED");
    });
    assert.equal(item.event_type, "order.created");
    assert.equal(item.attempts, 1);
    assert.equal(item.last_status_code, 204);
    assert.ok(item.delivered_at, "delivered_at is missing");
  });

  it("answers a typed error for an unknown event type", async () => {
    const { data, error, response } = await publisher.POST("/v1/events", {
      body: { type: "order.shipped", data: { order_id: "1042" } },
    });
    assert.equal(response.status, 400);
    assert.equal(data, undefined);
    assert.equal(error.code, "UNKNOWN_EVENT_TYPE");
    assert.match(error.message, /order\.shipped/);
  });

  it("answers a typed error for an unknown token", async () => {
    const stranger = createHookferryClient({ baseUrl, token: "hf_not_a_token" });
    const { error, response } = await stranger.GET("/v1/event-types");
    assert.equal(response.status, 401);
    assert.equal(error.code, "UNAUTHENTICATED");
  });

  it("stops cleanly on SIGTERM", async () => {
    server.proc.kill("SIGTERM");
    const { code, signal } = await server.exited;
    assert.equal(signal, null, `hookferry died of ${signal}; log:\n${server.log.join("\n")}`);
    assert.equal(code, 0, `hookferry exited ${code}; log:\n${server.log.join("\n")}`);
  });
});
