// Unit tests of verifyWebhook (dist/receiver.js; `npm test` builds it first):
// deliveries signed here the way hookferry signs them (delivery/sign.go): one
// signature per key, newest first, "v1,<HMAC-SHA256>" for a whsec_ secret and
// "v1a,<ed25519>" for a private key whose public key (whpk_) the receiver has.
import assert from "node:assert/strict";
import { createHmac, generateKeyPairSync, randomBytes, sign as ed25519Sign } from "node:crypto";
import { describe, it } from "node:test";

import { InvalidWebhookError, verifyWebhook, WEBHOOK_TOLERANCE_SECONDS } from "../dist/receiver.js";

/** A symmetric key: what hookferry signs with and what the receiver verifies with are the same. */
function symmetricKey() {
  const secret = `whsec_${randomBytes(32).toString("base64")}`;
  return { signer: { kind: "v1", secret }, verifyWith: secret };
}

/** An asymmetric key: hookferry signs with the private half, the receiver gets whpk_ + the raw public key. */
function asymmetricKey() {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  const raw = Buffer.from(publicKey.export({ format: "jwk" }).x, "base64url");
  return { signer: { kind: "v1a", privateKey }, verifyWith: `whpk_${raw.toString("base64")}` };
}

function signOne(signer, content) {
  if (signer.kind === "v1") {
    const key = Buffer.from(signer.secret.slice("whsec_".length), "base64");
    return `v1,${createHmac("sha256", key).update(content).digest("base64")}`;
  }
  return `v1a,${ed25519Sign(null, content, signer.privateKey).toString("base64")}`;
}

const now = () => Math.floor(Date.now() / 1000);

/** A delivery signed by each of signers, in order, as hookferry sends it. */
function delivery(signers, { id = "evt_01", timestamp = now(), data = { order_id: "1042" } } = {}) {
  const body = JSON.stringify({ id, type: "order.created", timestamp: new Date(timestamp * 1000).toISOString(), data });
  const content = Buffer.from(`${id}.${timestamp}.${body}`);
  return {
    body,
    headers: {
      "webhook-id": id,
      "webhook-timestamp": String(timestamp),
      "webhook-signature": signers.map((s) => signOne(s, content)).join(" "),
      "content-type": "application/json",
    },
  };
}

function refused(reason, fn) {
  assert.throws(fn, (err) => {
    assert.ok(err instanceof InvalidWebhookError, `${err}`);
    assert.equal(err.reason, reason, err.message);
    assert.match(err.message, /^hookferry webhook: /);
    return true;
  });
}

describe("verifyWebhook", () => {
  it("accepts a delivery signed with its one key, as a string or a one-key array", () => {
    const k = symmetricKey();
    const d = delivery([k.signer]);
    assert.deepEqual(verifyWebhook(k.verifyWith, d.body, d.headers).data, { order_id: "1042" });
    assert.equal(verifyWebhook([k.verifyWith], d.body, d.headers).id, "evt_01");
    // The bare base64 part of a whsec_ secret works too.
    assert.equal(verifyWebhook(k.verifyWith.slice("whsec_".length), d.body, d.headers).id, "evt_01");
  });

  it("accepts a rotation's delivery with the new key, the old key or both, in any order", () => {
    const oldKey = symmetricKey();
    const newKey = symmetricKey();
    const d = delivery([newKey.signer, oldKey.signer]);
    for (const keys of [newKey.verifyWith, oldKey.verifyWith, [newKey.verifyWith, oldKey.verifyWith], [oldKey.verifyWith, newKey.verifyWith]]) {
      assert.equal(verifyWebhook(keys, d.body, d.headers).id, "evt_01", `keys ${keys}`);
    }
  });

  it("accepts a delivery signed with one key when the receiver holds two and the other is unrelated", () => {
    const signing = symmetricKey();
    const other = symmetricKey();
    const d = delivery([signing.signer]);
    assert.equal(verifyWebhook([other.verifyWith, signing.verifyWith], d.body, d.headers).id, "evt_01");
    assert.equal(verifyWebhook([signing.verifyWith, other.verifyWith], d.body, d.headers).id, "evt_01");
  });

  it("accepts a v1a signature with the whpk_ public key", () => {
    const k = asymmetricKey();
    const d = delivery([k.signer]);
    assert.match(d.headers["webhook-signature"], /^v1a,[A-Za-z0-9+/]{86}==$/);
    assert.equal(verifyWebhook(k.verifyWith, d.body, d.headers).type, "order.created");
  });

  it("accepts a mixed header (v1a then v1) with either key, and both", () => {
    const asym = asymmetricKey(); // the new key after a change of signing
    const sym = symmetricKey(); // the old one, still signing
    const d = delivery([asym.signer, sym.signer]);
    assert.match(d.headers["webhook-signature"], /^v1a,\S+ v1,\S+$/);
    assert.equal(verifyWebhook(asym.verifyWith, d.body, d.headers).id, "evt_01");
    assert.equal(verifyWebhook(sym.verifyWith, d.body, d.headers).id, "evt_01");
    assert.equal(verifyWebhook([sym.verifyWith, asym.verifyWith], d.body, d.headers).id, "evt_01");
    // The other way round (v1 first) too.
    const r = delivery([sym.signer, asym.signer]);
    assert.equal(verifyWebhook(asym.verifyWith, r.body, r.headers).id, "evt_01");
    assert.equal(verifyWebhook(sym.verifyWith, r.body, r.headers).id, "evt_01");
  });

  it("accepts a signature header split over several header lines", () => {
    const a = asymmetricKey();
    const s = symmetricKey();
    const d = delivery([a.signer, s.signer]);
    const headers = { ...d.headers, "webhook-signature": d.headers["webhook-signature"].split(" ") };
    assert.equal(verifyWebhook(s.verifyWith, d.body, headers).id, "evt_01");
    assert.equal(verifyWebhook(a.verifyWith, d.body, headers).id, "evt_01");
  });

  for (const [name, make] of [["v1", symmetricKey], ["v1a", asymmetricKey]]) {
    it(`refuses a tampered body, id or timestamp (${name})`, () => {
      const k = make();
      const d = delivery([k.signer]);
      assert.equal(verifyWebhook(k.verifyWith, d.body, d.headers).id, "evt_01");
      refused("signature", () => verifyWebhook(k.verifyWith, d.body.replace("1042", "1043"), d.headers));
      refused("signature", () => verifyWebhook(k.verifyWith, `${d.body} `, d.headers));
      refused("signature", () => verifyWebhook(k.verifyWith, d.body, { ...d.headers, "webhook-id": "evt_02" }));
      const ts = Number(d.headers["webhook-timestamp"]);
      refused("signature", () => verifyWebhook(k.verifyWith, d.body, { ...d.headers, "webhook-timestamp": String(ts + 1) }));
      refused("signature", () => verifyWebhook(k.verifyWith, d.body, { ...d.headers, "webhook-timestamp": String(ts - 1) }));
    });

    it(`refuses a timestamp outside the tolerance, even correctly signed (${name})`, () => {
      const k = make();
      assert.equal(WEBHOOK_TOLERANCE_SECONDS, 300);
      const inside = [now() - WEBHOOK_TOLERANCE_SECONDS + 5, now() + WEBHOOK_TOLERANCE_SECONDS - 5];
      for (const timestamp of inside) {
        const d = delivery([k.signer], { timestamp });
        assert.equal(verifyWebhook(k.verifyWith, d.body, d.headers).id, "evt_01", `timestamp ${timestamp}`);
      }
      for (const timestamp of [now() - WEBHOOK_TOLERANCE_SECONDS - 5, now() + WEBHOOK_TOLERANCE_SECONDS + 5, 0]) {
        const d = delivery([k.signer], { timestamp });
        refused("signature", () => verifyWebhook(k.verifyWith, d.body, d.headers));
        assert.throws(() => verifyWebhook(k.verifyWith, d.body, d.headers), /tolerance/);
      }
      const d = delivery([k.signer]);
      refused("signature", () => verifyWebhook(k.verifyWith, d.body, { ...d.headers, "webhook-timestamp": `${d.headers["webhook-timestamp"]}x` }));
    });
  }

  it("refuses a wrong key of either kind, alone or together", () => {
    const s = symmetricKey();
    const a = asymmetricKey();
    const ds = delivery([s.signer]);
    const da = delivery([a.signer]);
    refused("signature", () => verifyWebhook(symmetricKey().verifyWith, ds.body, ds.headers));
    refused("signature", () => verifyWebhook([symmetricKey().verifyWith, symmetricKey().verifyWith], ds.body, ds.headers));
    refused("signature", () => verifyWebhook(asymmetricKey().verifyWith, da.body, da.headers));
    refused("signature", () => verifyWebhook([asymmetricKey().verifyWith, symmetricKey().verifyWith], da.body, da.headers));
  });

  it("refuses a whpk_ key against a v1-only header, and a whsec_ key against a v1a-only one", () => {
    const s = symmetricKey();
    const a = asymmetricKey();
    const ds = delivery([s.signer]);
    refused("signature", () => verifyWebhook(a.verifyWith, ds.body, ds.headers));
    assert.throws(() => verifyWebhook(a.verifyWith, ds.body, ds.headers), /signatures sent: v1; keys for: v1a/);
    const da = delivery([a.signer]);
    refused("signature", () => verifyWebhook(s.verifyWith, da.body, da.headers));
  });

  it("refuses a signature moved to the other scheme's label", () => {
    const a = asymmetricKey();
    const d = delivery([a.signer]);
    const relabelled = { ...d.headers, "webhook-signature": d.headers["webhook-signature"].replace(/^v1a,/, "v2,") };
    refused("signature", () => verifyWebhook(a.verifyWith, d.body, relabelled));
  });

  it("refuses missing headers", () => {
    const k = symmetricKey();
    const d = delivery([k.signer]);
    for (const name of ["webhook-id", "webhook-timestamp", "webhook-signature"]) {
      const { [name]: _, ...rest } = d.headers;
      refused("signature", () => verifyWebhook(k.verifyWith, d.body, rest));
    }
  });

  it("refuses keys it cannot use: none, malformed, or a private key", () => {
    const d = delivery([symmetricKey().signer]);
    refused("secret", () => verifyWebhook([], d.body, d.headers));
    refused("secret", () => verifyWebhook("whsec_", d.body, d.headers));
    refused("secret", () => verifyWebhook("whpk_", d.body, d.headers));
    refused("secret", () => verifyWebhook(`whpk_${randomBytes(31).toString("base64")}`, d.body, d.headers));
    refused("secret", () => verifyWebhook(`whpk_${randomBytes(32).toString("base64")}!`, d.body, d.headers));
    refused("secret", () => verifyWebhook(`whsk_${randomBytes(64).toString("base64")}`, d.body, d.headers));
    // One bad key among good ones is still a mistake worth reporting.
    refused("secret", () => verifyWebhook([symmetricKey().verifyWith, "whpk_x"], d.body, d.headers));
  });

  it("refuses a correctly signed body that is not an envelope", () => {
    const k = symmetricKey();
    const id = "evt_01";
    const timestamp = now();
    for (const body of ["not json", '{"id":"evt_01"}']) {
      const signature = signOne(k.signer, Buffer.from(`${id}.${timestamp}.${body}`));
      const headers = { "webhook-id": id, "webhook-timestamp": String(timestamp), "webhook-signature": signature };
      refused("payload", () => verifyWebhook(k.verifyWith, body, headers));
    }
  });
});
