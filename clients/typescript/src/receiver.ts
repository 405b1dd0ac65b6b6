/**
 * Receiving hookferry deliveries: verify the Standard Webhooks signature of a
 * delivery and get its envelope back.
 *
 * ```ts
 * import { verifyWebhook } from "@hookferry/client/receiver";
 *
 * // body: the raw request body as received (a string, before any JSON parsing);
 * // during a rotation pass the new and the old key: [newKey, oldKey].
 * const event = verifyWebhook(process.env.WEBHOOK_SECRET!, body, req.headers);
 * console.log(event.id, event.type, event.data);
 * ```
 */
import { createPublicKey, verify as verifySignature, type KeyObject } from "node:crypto";
import { Webhook } from "standardwebhooks";

/** The body of every delivery hookferry sends. */
export interface WebhookEnvelope<T = Record<string, unknown>> {
  /** The event's id (`evt_…`), also sent as the `webhook-id` header: deduplicate on it. */
  id: string;
  /** The event type, such as `order.created`. */
  type: string;
  /** When the event was published (RFC 3339); order events by it, not by arrival. */
  timestamp: string;
  /** The event's payload, exactly as the producer sent it. */
  data: T;
}

/** Thrown by {@link verifyWebhook} when a delivery cannot be trusted or understood. */
export class InvalidWebhookError extends Error {
  /** What was wrong: the key, the signature (or its headers and timestamp), or the body. */
  readonly reason: "secret" | "signature" | "payload";

  constructor(reason: InvalidWebhookError["reason"], message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "InvalidWebhookError";
    this.reason = reason;
  }
}

/** Request headers as a Node.js server or a plain object has them. */
export type WebhookHeaders = Record<string, string | string[] | undefined>;

/**
 * A key to verify deliveries with, as hookferry shows it in `authentication.secret`:
 * `whsec_…` (the shared secret of a SYMMETRIC webhook; the bare base64 part is
 * accepted too) or `whpk_…` (the ed25519 public key of an ASYMMETRIC one).
 */
export type WebhookKey = string;

/** How far a delivery's `webhook-timestamp` may be from now, as in `standardwebhooks`. */
export const WEBHOOK_TOLERANCE_SECONDS = 5 * 60;

const PUBLIC_KEY_PREFIX = "whpk_";
const PRIVATE_KEY_PREFIX = "whsk_";
const ED25519_PUBLIC_KEY_BYTES = 32;
const ED25519_SIGNATURE_BYTES = 64;

/** One signature of the `webhook-signature` header: `v1,<b64>` or `v1a,<b64>`. */
interface Signature {
  version: string;
  value: string;
}

/** A parsed key: checks the signatures of its kind, ignores the others. */
interface Verifier {
  version: "v1" | "v1a";
  matches(id: string, timestamp: string, body: string, header: string, signatures: readonly Signature[]): boolean;
}

/**
 * Verifies a delivery's signature (headers `webhook-id`, `webhook-timestamp`,
 * `webhook-signature`, in any letter case) and returns the parsed envelope.
 *
 * The header carries one signature per key hookferry signs with, newest first:
 * `v1,…` (HMAC-SHA256) for a `whsec_` secret, `v1a,…` (ed25519) for a webhook
 * whose key is a `whpk_` public key. The delivery is accepted when any of them
 * verifies with any of `keys`, so during a rotation a receiver can pass the new and
 * the old key and accept deliveries signed with either. The timestamp must be
 * within {@link WEBHOOK_TOLERANCE_SECONDS} of now, whatever the key.
 *
 * @param keys the webhook's key (`whsec_…` or `whpk_…`, as `authentication.secret`
 *   shows it), or several of them, such as `[newKey, oldKey]` during a rotation.
 * @param body the raw request body, byte for byte as received.
 * @param headers the request headers.
 * @throws {InvalidWebhookError} on a malformed key or none, a missing header, a
 *   timestamp out of tolerance, no signature that matches, or a body that is not
 *   an envelope.
 */
export function verifyWebhook<T = Record<string, unknown>>(
  keys: WebhookKey | readonly WebhookKey[],
  body: string,
  headers: WebhookHeaders,
): WebhookEnvelope<T> {
  const list: readonly WebhookKey[] = typeof keys === "string" ? [keys] : keys;
  if (list.length === 0) {
    throw new InvalidWebhookError("secret", "hookferry webhook: no key to verify with");
  }
  const verifiers = list.map(parseKey);

  const flat: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    flat[name.toLowerCase()] = Array.isArray(value) ? value.join(" ") : value;
  }
  const id = flat["webhook-id"];
  const timestamp = flat["webhook-timestamp"];
  const header = flat["webhook-signature"];
  if (!id || !timestamp || !header) {
    const missing = ["webhook-id", "webhook-timestamp", "webhook-signature"].filter((n) => !flat[n]);
    throw new InvalidWebhookError("signature", `hookferry webhook: missing header ${missing.join(", ")}`);
  }
  checkTimestamp(timestamp);

  const signatures = header
    .split(" ")
    .filter((s) => s !== "")
    .map((s): Signature => {
      const comma = s.indexOf(",");
      return comma < 0 ? { version: s, value: "" } : { version: s.slice(0, comma), value: s.slice(comma + 1) };
    });
  if (!verifiers.some((v) => v.matches(id, timestamp, body, header, signatures))) {
    const sent = [...new Set(signatures.map((s) => s.version))].join(", ") || "none";
    const given = [...new Set(verifiers.map((v) => v.version))].join(", ");
    throw new InvalidWebhookError(
      "signature",
      `hookferry webhook: no signature matches the ${list.length === 1 ? "key" : `${list.length} keys`} ` +
        `(signatures sent: ${sent}; keys for: ${given}); ` +
        "check the webhook's key (whsec_ for SYMMETRIC, whpk_ for ASYMMETRIC) and pass the raw body as received",
    );
  }

  let payload: unknown;
  try {
    payload = JSON.parse(body);
  } catch (err) {
    throw new InvalidWebhookError("payload", `hookferry webhook: the signature is valid but the body is not JSON: ${messageOf(err)}`, {
      cause: err,
    });
  }
  if (!isEnvelope(payload)) {
    throw new InvalidWebhookError(
      "payload",
      "hookferry webhook: the signature is valid but the body is not an envelope {id, type, timestamp, data}",
    );
  }
  return payload as WebhookEnvelope<T>;
}

function parseKey(key: WebhookKey, index: number): Verifier {
  const which = index === 0 ? "the key" : `key ${index + 1}`;
  if (typeof key !== "string") {
    throw new InvalidWebhookError("secret", `hookferry webhook: ${which} is not a string`);
  }
  if (key.startsWith(PRIVATE_KEY_PREFIX)) {
    throw new InvalidWebhookError(
      "secret",
      `hookferry webhook: ${which} is a private key (whsk_); verify with the public key (whpk_) in authentication.secret`,
    );
  }
  if (key.startsWith(PUBLIC_KEY_PREFIX)) {
    return ed25519Verifier(publicKey(key, which));
  }
  let wh: Webhook;
  try {
    // The package strips the whsec_ prefix itself and base64-decodes the rest.
    wh = new Webhook(key);
  } catch (err) {
    throw new InvalidWebhookError(
      "secret",
      `hookferry webhook: ${which} is neither a Standard Webhooks secret (whsec_ + base64) nor a public key (whpk_ + base64): ${messageOf(err)}`,
      { cause: err },
    );
  }
  return {
    version: "v1",
    matches(id, timestamp, body, header) {
      // standardwebhooks checks the v1 entries of the header and skips the others
      // (v1a included); it throws when none matches.
      try {
        wh.verify(body, { "webhook-id": id, "webhook-timestamp": timestamp, "webhook-signature": header }, { jsonParse: false });
        return true;
      } catch {
        return false;
      }
    },
  };
}

function publicKey(key: string, which: string): KeyObject {
  const encoded = key.slice(PUBLIC_KEY_PREFIX.length);
  const raw = Buffer.from(encoded, "base64");
  // Buffer.from skips what is not base64: re-encoding catches a key that was not.
  if (raw.length !== ED25519_PUBLIC_KEY_BYTES || raw.toString("base64") !== encoded) {
    throw new InvalidWebhookError(
      "secret",
      `hookferry webhook: ${which} is not an ed25519 public key (whpk_ + base64 of ${ED25519_PUBLIC_KEY_BYTES} bytes)`,
    );
  }
  try {
    return createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: raw.toString("base64url") }, format: "jwk" });
  } catch (err) {
    throw new InvalidWebhookError("secret", `hookferry webhook: ${which} is not an ed25519 public key: ${messageOf(err)}`, { cause: err });
  }
}

function ed25519Verifier(key: KeyObject): Verifier {
  return {
    version: "v1a",
    matches(id, timestamp, body, _header, signatures) {
      let content: Buffer | undefined;
      for (const { version, value } of signatures) {
        if (version !== "v1a") continue;
        const sig = Buffer.from(value, "base64");
        if (sig.length !== ED25519_SIGNATURE_BYTES) continue;
        content ??= Buffer.from(`${id}.${timestamp}.${body}`, "utf8");
        if (verifySignature(null, content, key, sig)) return true;
      }
      return false;
    },
  };
}

function checkTimestamp(header: string): void {
  if (!/^[0-9]{1,15}$/.test(header)) {
    throw new InvalidWebhookError("signature", "hookferry webhook: webhook-timestamp is not a Unix time in seconds");
  }
  const skew = Math.floor(Date.now() / 1000) - Number(header);
  if (skew > WEBHOOK_TOLERANCE_SECONDS) {
    throw new InvalidWebhookError("signature", `hookferry webhook: the timestamp is ${skew} s old, over the tolerance of ${WEBHOOK_TOLERANCE_SECONDS} s`);
  }
  if (-skew > WEBHOOK_TOLERANCE_SECONDS) {
    throw new InvalidWebhookError("signature", `hookferry webhook: the timestamp is ${-skew} s ahead, over the tolerance of ${WEBHOOK_TOLERANCE_SECONDS} s`);
  }
}

function isEnvelope(v: unknown): v is WebhookEnvelope<unknown> {
  if (typeof v !== "object" || v === null) return false;
  const o = v as Record<string, unknown>;
  return typeof o.id === "string" && typeof o.type === "string" && typeof o.timestamp === "string" && "data" in o;
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
