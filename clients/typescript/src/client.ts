// The typed client, apart from the receiver helper (node:crypto) so that a
// browser bundle such as the portal's imports it alone.
import createClient, { type Client, type ClientOptions } from "openapi-fetch";
import type { components, operations, paths } from "./schema.js";

export type { components, operations, paths } from "./schema.js";

type Schemas = components["schemas"];

export type EventTypeName = Schemas["EventTypeName"];
export type Subscription = Schemas["Subscription"];
export type RegisterWebhookRequest = Schemas["RegisterWebhookRequest"];
export type WebhookStatus = Schemas["WebhookStatus"];
export type PauseReason = Schemas["PauseReason"];
export type Authentication = Schemas["Authentication"];
export type Signing = Schemas["Signing"];
export type RotateSecretRequest = Schemas["RotateSecretRequest"];
export type Webhook = Schemas["Webhook"];
export type WebhookList = Schemas["WebhookList"];
export type EventType = Schemas["EventType"];
export type EventTypeList = Schemas["EventTypeList"];
export type PublishEventRequest = Schemas["PublishEventRequest"];
export type Audience = Schemas["Audience"];
export type PublishedEvent = Schemas["PublishedEvent"];
export type PublishEventsRequest = Schemas["PublishEventsRequest"];
export type PublishedEvents = Schemas["PublishedEvents"];
export type DeliveryStatus = Schemas["DeliveryStatus"];
export type Delivery = Schemas["Delivery"];
export type DeliveryList = Schemas["DeliveryList"];
export type Health = Schemas["Health"];
export type ErrorCode = Schemas["ErrorCode"];
/** The body of every error response of the API. */
export type Error = Schemas["Error"];
/** The same as {@link Error}, under a name that does not shadow the global `Error`. */
export type ApiError = Schemas["Error"];

/** A client for the hookferry API, typed by the generated `paths`. */
export type HookferryClient = Client<paths>;

export interface HookferryClientOptions extends Omit<ClientOptions, "baseUrl"> {
  /** The root of the hookferry instance, such as `https://hookferry.example.com` (no `/v1`). */
  baseUrl: string;
  /** A bearer token (`hf_…`) created with `hookferry token create`. */
  token: string;
}

/**
 * Creates an openapi-fetch client for the hookferry instance at `baseUrl` that sends
 * `Authorization: Bearer <token>` with every request. Other openapi-fetch options
 * (`fetch`, `headers`, …) are passed through; the token wins over an Authorization
 * header given in `headers`.
 */
export function createHookferryClient(options: HookferryClientOptions): HookferryClient {
  const { baseUrl, token, ...rest } = options;
  if (!baseUrl) {
    throw new TypeError("createHookferryClient: baseUrl is required (the root of the hookferry instance)");
  }
  if (!token) {
    throw new TypeError("createHookferryClient: token is required (create one with `hookferry token create`)");
  }
  const client = createClient<paths>({ ...rest, baseUrl });
  const authorization = `Bearer ${token}`;
  client.use({
    onRequest({ request }) {
      request.headers.set("Authorization", authorization);
      return request;
    },
  });
  return client;
}
