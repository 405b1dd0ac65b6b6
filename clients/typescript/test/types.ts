// Compile-time checks of the generated types, run by `npm run typecheck` (never
// executed): each @ts-expect-error must hit a real type error, or tsc fails.
import { createHookferryClient, type ErrorCode, type Webhook } from "../src/index.js";
import { verifyWebhook, type WebhookEnvelope } from "../src/receiver.js";

export async function typedUsage(): Promise<void> {
  const hf = createHookferryClient({ baseUrl: "http://127.0.0.1:8080", token: "hf_x" });

  const registered = await hf.POST("/v1/webhooks", {
    body: { url: "https://example.com/hooks", subscription: { event_types: ["order.created"] } },
  });
  if (registered.data) {
    const wh: Webhook = registered.data;
    const status: "ACTIVE" | "PAUSED" = wh.status;
    const secret: string | undefined = wh.authentication?.secret;
    const ordered: boolean = wh.ordered;
    const reason: "USER" | "DELIVERY_FAILURES" | "ENDPOINT_GONE" | undefined = wh.pause_reason;
    void status;
    void secret;
    void ordered;
    void reason;
  }
  if (registered.error) {
    const code: ErrorCode = registered.error.code;
    void code;
  }

  const deliveries = await hf.GET("/v1/webhooks/{webhook_id}/deliveries", {
    params: { path: { webhook_id: "wh_1" }, query: { limit: 10, status: "DELIVERED" } },
  });
  void deliveries.data?.items.map((d) => d.status);

  // @ts-expect-error: not a path of the contract
  await hf.GET("/v1/nope");
  // @ts-expect-error: the body needs a subscription
  await hf.POST("/v1/webhooks", { body: { url: "https://example.com/hooks" } });
  await hf.POST("/v1/webhooks", {
    body: { url: "https://example.com/hooks", subscription: { event_types: ["order.created"] }, ordered: true },
  });
  await hf.POST("/v1/webhooks", {
    // @ts-expect-error: ordered is a boolean
    body: { url: "https://example.com/hooks", subscription: { event_types: ["order.created"] }, ordered: "yes" },
  });
  // @ts-expect-error: publishEvent needs data
  await hf.POST("/v1/events", { body: { type: "order.created" } });
  // @ts-expect-error: the path parameter is required
  await hf.GET("/v1/webhooks/{webhook_id}", {});
  await hf.GET("/v1/webhooks/{webhook_id}/deliveries", {
    // @ts-expect-error: not a DeliveryStatus
    params: { path: { webhook_id: "wh_1" }, query: { status: "LOST" } },
  });

  const env: WebhookEnvelope<{ order_id: string }> = verifyWebhook("whsec_x", "{}", { "webhook-id": "evt_1" });
  const orderId: string = env.data.order_id;
  void orderId;
  // During a rotation: the new and the old key, of either kind.
  verifyWebhook(["whpk_x", "whsec_x"] as const, "{}", {});
  // @ts-expect-error: keys are strings
  verifyWebhook([new Uint8Array(32)], "{}", {});

  const rotated = await hf.POST("/v1/webhooks/{webhook_id}/rotate-secret", {
    params: { path: { webhook_id: "wh_1" } },
    body: { previous_secret_ttl_seconds: 3600 },
  });
  const until: string | undefined = rotated.data?.previous_secret_expires_at;
  void until;
  await hf.POST("/v1/webhooks", {
    // @ts-expect-error: not a Signing
    body: { url: "https://example.com/hooks", subscription: { event_types: ["order.created"] }, signing: "RSA" },
  });
}
