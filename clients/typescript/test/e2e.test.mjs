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
// and get typed errors back for a bad event type and a bad token; then an
// ASYMMETRIC webhook (v1a signatures, verified with its whpk_ key) and secret
// rotation (both keys sign during the overlap, none but the newest after a
// rotation without one). Deliveries are awaited with receiver.next, which the
// receiver resolves when the request arrives.
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

/**
 * An HTTPS receiver that records every request and answers 204. next(match)
 * resolves with the first request, received or still to come, that match accepts.
 */
async function startReceiver(tls) {
  const received = [];
  const waiting = new Set(); // {match, resolve}
  const server = createServer({ key: tls.key, cert: tls.cert }, (req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const request = {
        method: req.method,
        url: req.url,
        headers: req.headers,
        body: Buffer.concat(chunks).toString("utf8"),
      };
      received.push(request);
      res.writeHead(204).end();
      for (const w of waiting) {
        if (w.match(request)) {
          waiting.delete(w);
          w.resolve(request);
        }
      }
    });
  });
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  function next(what, match, timeoutMs = WAIT_MS) {
    const already = received.find(match);
    if (already) return Promise.resolve(already);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        waiting.delete(w);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; received: ${received.map((r) => `${r.url} ${r.headers["webhook-id"]}`).join(", ")}`));
      }, timeoutMs);
      const w = { match, resolve: (r) => (clearTimeout(timer), resolve(r)) };
      waiting.add(w);
    });
  }
  return { server, received, next, port: server.address().port };
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
  let rotating; // {id, oldKey, newKey}: a webhook rotated with an hour of overlap

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
    delivery = await receiver.next("the receiver to get the event", (r) => r.url === "/hooks" && r.headers["webhook-id"] === published.id);
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

  it("publishes a batch and delivers each event, signed", async () => {
    assert.ok(webhook, "no webhook registered");
    const { data, error, response } = await publisher.POST("/v1/events/batch", {
      body: {
        events: [
          { type: "order.created", id: "batch-1", data: { order_id: "2001" } },
          { type: "order.created", data: { order_id: "2002" } },
          { type: "order.created", id: "batch-1", data: { order_id: "ignored" } },
        ],
      },
    });
    assert.equal(response.status, 202, JSON.stringify(error));
    assert.equal(data.events.length, 3);
    assert.deepEqual(data.events[2], data.events[0], "a repeated producer id answers its first event");
    for (const [i, ev] of data.events.slice(0, 2).entries()) {
      assert.equal(ev.deliveries, 1);
      const got = await receiver.next(`the receiver to get batch event ${i}`, (r) => r.url === "/hooks" && r.headers["webhook-id"] === ev.id);
      assert.deepEqual(verifyWebhook(webhook.authentication.secret, got.body, got.headers).data, { order_id: `200${i + 1}` });
    }
  });

  it("refuses a batch with a bad event, naming it", async () => {
    const { data, error, response } = await publisher.POST("/v1/events/batch", {
      body: { events: [{ type: "order.created", data: {} }, { type: "order.shipped", data: {} }] },
    });
    assert.equal(response.status, 400);
    assert.equal(data, undefined);
    assert.equal(error.code, "UNKNOWN_EVENT_TYPE");
    assert.deepEqual(error.details, { index: 1, field: "events[1].type" });
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

  /** Registers a webhook for order.created on the receiver at path; returns it with its key. */
  async function register(path, extra = {}) {
    const { data, error, response } = await manager.POST("/v1/webhooks", {
      body: { url: `https://127.0.0.1:${receiver.port}${path}`, subscription: { event_types: ["order.created"] }, ...extra },
    });
    assert.equal(response.status, 201, JSON.stringify(error));
    return data;
  }

  /** Publishes an order.created event and waits for its delivery at path. */
  async function publishTo(path, orderId) {
    const { data, error, response } = await publisher.POST("/v1/events", {
      body: { type: "order.created", data: { order_id: orderId } },
    });
    assert.equal(response.status, 202, JSON.stringify(error));
    return receiver.next(`the delivery of ${data.id} at ${path}`, (r) => r.url === path && r.headers["webhook-id"] === data.id);
  }

  async function rotate(webhookId, ttlSeconds) {
    const { data, error, response } = await manager.POST("/v1/webhooks/{webhook_id}/rotate-secret", {
      params: { path: { webhook_id: webhookId } },
      body: { previous_secret_ttl_seconds: ttlSeconds },
    });
    assert.equal(response.status, 200, JSON.stringify(error));
    return data;
  }

  const signaturesOf = (d) => d.headers["webhook-signature"].split(" ");
  const withSignatures = (d, signatures) => ({ ...d.headers, "webhook-signature": signatures.join(" ") });
  const refusesSignature = (fn) =>
    assert.throws(fn, (err) => err instanceof InvalidWebhookError && err.reason === "signature");

  it("signs an ASYMMETRIC webhook's deliveries with v1a, verified with its whpk_ public key", async () => {
    const wh = await register("/hooks/asymmetric", { signing: "ASYMMETRIC" });
    assert.equal(wh.signing, "ASYMMETRIC");
    assert.equal(wh.authentication?.scheme, "STANDARD_WEBHOOKS");
    const publicKey = wh.authentication.secret;
    assert.match(publicKey, /^whpk_[A-Za-z0-9+/]{43}=$/);

    const d = await publishTo("/hooks/asymmetric", "2001");
    assert.match(d.headers["webhook-signature"], /^v1a,[A-Za-z0-9+/]{86}==$/);
    const envelope = verifyWebhook(publicKey, d.body, d.headers);
    assert.deepEqual(envelope.data, { order_id: "2001" });
    // Another webhook's key, of either kind, does not verify it.
    refusesSignature(() => verifyWebhook(webhook.authentication.secret, d.body, d.headers));
    const other = await register("/hooks/asymmetric-other", { signing: "ASYMMETRIC" });
    refusesSignature(() => verifyWebhook(other.authentication.secret, d.body, d.headers));
    refusesSignature(() => verifyWebhook(publicKey, d.body.replace("2001", "2002"), d.headers));
  });

  it("signs with the new and the old key while a rotation overlaps, with the new one only after a rotation without overlap", async () => {
    const wh = await register("/hooks/rotating");
    const oldKey = wh.authentication.secret;
    assert.match(oldKey, /^whsec_/);
    assert.equal(wh.previous_secret_expires_at, undefined);

    const before = Date.now();
    const rotated = await rotate(wh.id, 3600);
    const newKey = rotated.authentication?.secret;
    assert.match(newKey ?? "", /^whsec_[A-Za-z0-9+/]+=*$/);
    assert.notEqual(newKey, oldKey);
    assert.equal(rotated.id, wh.id);
    const expires = Date.parse(rotated.previous_secret_expires_at ?? "");
    assert.ok(
      expires >= before + 3600_000 - 5_000 && expires <= Date.now() + 3600_000 + 5_000,
      `previous_secret_expires_at ${rotated.previous_secret_expires_at} is not an hour from now`,
    );

    const overlapping = await publishTo("/hooks/rotating", "3001");
    const sigs = signaturesOf(overlapping);
    assert.equal(sigs.length, 2, overlapping.headers["webhook-signature"]);
    assert.ok(sigs.every((s) => s.startsWith("v1,")), overlapping.headers["webhook-signature"]);
    assert.equal(verifyWebhook(oldKey, overlapping.body, overlapping.headers).data.order_id, "3001");
    assert.equal(verifyWebhook(newKey, overlapping.body, overlapping.headers).data.order_id, "3001");
    assert.equal(verifyWebhook([newKey, oldKey], overlapping.body, overlapping.headers).data.order_id, "3001");
    // Newest first: the first signature is the new key's, the second the old one's.
    verifyWebhook(newKey, overlapping.body, withSignatures(overlapping, [sigs[0]]));
    verifyWebhook(oldKey, overlapping.body, withSignatures(overlapping, [sigs[1]]));
    refusesSignature(() => verifyWebhook(oldKey, overlapping.body, withSignatures(overlapping, [sigs[0]])));
    rotating = { id: wh.id, oldKey, newKey };

    // previous_secret_ttl_seconds 0 drops the key it replaces at once.
    const fresh = await register("/hooks/rotating-now");
    const replaced = fresh.authentication.secret;
    const now = await rotate(fresh.id, 0);
    const newest = now.authentication.secret;
    assert.notEqual(newest, replaced);
    assert.equal(now.previous_secret_expires_at, undefined);
    const after = await publishTo("/hooks/rotating-now", "3002");
    assert.equal(signaturesOf(after).length, 1, after.headers["webhook-signature"]);
    assert.equal(verifyWebhook(newest, after.body, after.headers).data.order_id, "3002");
    refusesSignature(() => verifyWebhook(replaced, after.body, after.headers));
    assert.equal(verifyWebhook([replaced, newest], after.body, after.headers).data.order_id, "3002");
  });

  it("drops only the replaced key on a rotation without overlap; earlier keys sign until they expire", async () => {
    assert.ok(rotating, "no rotated webhook");
    const { id, oldKey, newKey } = rotating; // newKey signs, and oldKey for an hour more
    const latest = (await rotate(id, 0)).authentication.secret;
    const d = await publishTo("/hooks/rotating", "3003");
    const sigs = signaturesOf(d);
    assert.equal(sigs.length, 2, "the newest key and the first one, still in its hour of overlap");
    verifyWebhook(latest, d.body, withSignatures(d, [sigs[0]]));
    verifyWebhook(oldKey, d.body, withSignatures(d, [sigs[1]]));
    refusesSignature(() => verifyWebhook(newKey, d.body, d.headers));
  });

  it("stops cleanly on SIGTERM", async () => {
    server.proc.kill("SIGTERM");
    const { code, signal } = await server.exited;
    assert.equal(signal, null, `hookferry died of ${signal}; log:\n${server.log.join("\n")}`);
    assert.equal(code, 0, `hookferry exited ${code}; log:\n${server.log.join("\n")}`);
  });
});
