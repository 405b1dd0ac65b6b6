/**
 * Receiving hookferry deliveries: verify the Standard Webhooks signature of a
 * delivery with the `standardwebhooks` package and get its envelope back.
 *
 * ```ts
 * import { verifyWebhook } from "@hookferry/client/receiver";
 *
 * // body: the raw request body as received (a string, before any JSON parsing)
 * const event = verifyWebhook(process.env.WEBHOOK_SECRET!, body, req.headers);
 * console.log(event.id, event.type, event.data);
 * ```
 */
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
  /** What was wrong: the secret, the signature (or its headers), or the body. */
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
 * Verifies a delivery's signature (headers `webhook-id`, `webhook-timestamp`,
 * `webhook-signature`, in any letter case) against the webhook's signing secret,
 * with a timestamp tolerance of five minutes, and returns the parsed envelope.
 *
 * @param secret the webhook's secret, `whsec_…` as hookferry returns it (the bare
 *   base64 part is accepted too).
 * @param body the raw request body, byte for byte as received.
 * @param headers the request headers.
 * @throws {InvalidWebhookError} on a malformed secret, a missing header, a stale
 *   timestamp, a signature that does not match, or a body that is not an envelope.
 */
export function verifyWebhook<T = Record<string, unknown>>(
  secret: string,
  body: string,
  headers: WebhookHeaders,
): WebhookEnvelope<T> {
  let wh: Webhook;
  try {
    // The package strips the whsec_ prefix itself and base64-decodes the rest.
    wh = new Webhook(secret);
  } catch (err) {
    throw new InvalidWebhookError(
      "secret",
      `hookferry webhook: the signing secret is not a Standard Webhooks secret (whsec_ + base64): ${messageOf(err)}`,
      { cause: err },
    );
  }

  const flat: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    flat[name.toLowerCase()] = Array.isArray(value) ? value.join(" ") : value;
  }

  let payload: unknown;
  try {
    payload = wh.verify(body, flat);
  } catch (err) {
    throw new InvalidWebhookError(
      "signature",
      `hookferry webhook: signature verification failed (${messageOf(err)}); ` +
        "check the webhook's secret and pass the raw body as received",
      { cause: err },
    );
  }

  if (!isEnvelope(payload)) {
    throw new InvalidWebhookError(
      "payload",
      "hookferry webhook: the signature is valid but the body is not an envelope {id, type, timestamp, data}",
    );
  }
  return payload as WebhookEnvelope<T>;
}

function isEnvelope(v: unknown): v is WebhookEnvelope<unknown> {
  if (typeof v !== "object" || v === null) return false;
  const o = v as Record<string, unknown>;
  return typeof o.id === "string" && typeof o.type === "string" && typeof o.timestamp === "string" && "data" in o;
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
