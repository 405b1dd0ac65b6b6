/**
 * @hookferry/client: a typed client for the hookferry API.
 *
 * The types come from openapi.yaml (`npm run generate` writes src/schema.d.ts with
 * openapi-typescript); the client is openapi-fetch, so every path, parameter, body
 * and response (success and error alike) is checked against the contract at compile
 * time.
 *
 * ```ts
 * import { createHookferryClient } from "@hookferry/client";
 *
 * const hf = createHookferryClient({ baseUrl: "https://hookferry.example.com", token: process.env.HOOKFERRY_TOKEN! });
 * const { data, error, response } = await hf.POST("/v1/webhooks", {
 *   body: { url: "https://example.com/hooks", subscription: { event_types: ["order.created"] } },
 * });
 * if (error) throw new Error(`${response.status} ${error.code}: ${error.message}`);
 * console.log(data.id, data.authentication?.secret);
 * ```
 */
export * from "./client.js";
export {
  verifyWebhook,
  InvalidWebhookError,
  WEBHOOK_TOLERANCE_SECONDS,
  type WebhookEnvelope,
  type WebhookHeaders,
  type WebhookKey,
} from "./receiver.js";
