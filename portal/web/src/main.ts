// The hookferry consumer portal: plain DOM over the generated client. Every
// value from the API goes into the page as text (textContent, value), never as
// markup, so a webhook URL cannot inject anything.
import { createHookferryClient, type HookferryClient, type Webhook, type Delivery, type EventType, type ApiError } from "../../../clients/typescript/src/client.ts";

const SESSION_KEY = "hookferry.portal.session";

// The credential comes in the URL's fragment, which no server sees. It is
// moved out of the address bar at once, into this tab's sessionStorage so that a
// reload keeps working.
function takeSession(): string | null {
  const m = /(?:^#|&)session=([^&]+)/.exec(location.hash);
  if (m) {
    const token = decodeURIComponent(m[1]);
    try { sessionStorage.setItem(SESSION_KEY, token); } catch { /* storage off: memory only */ }
    history.replaceState(null, "", location.pathname + location.search);
    return token;
  }
  try { return sessionStorage.getItem(SESSION_KEY); } catch { return null; }
}

// Theme and accent from the embedding page: ?theme=light|dark and
// ?accent=%23rrggbb (a hex colour; anything else is ignored).
function applyTheme(): void {
  const q = new URLSearchParams(location.search);
  const theme = q.get("theme");
  if (theme === "light" || theme === "dark") document.documentElement.dataset.theme = theme;
  const accent = q.get("accent");
  if (accent && /^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$/.test(accent)) {
    const root = document.documentElement.style;
    root.setProperty("--hf-accent", accent);
    root.setProperty("--hf-accent-fg", textOn(accent));
  }
}

// textOn picks black or white text for a background colour, whichever
// contrasts more (WCAG relative luminance).
function textOn(hex: string): string {
  const full = hex.length === 4 ? hex.replace(/[0-9a-f]/gi, (c) => c + c) : hex;
  const [r, g, b] = [1, 3, 5].map((i) => {
    const c = parseInt(full.slice(i, i + 2), 16) / 255;
    return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  });
  const l = 0.2126 * r + 0.7152 * g + 0.0722 * b;
  return (l + 0.05) / 0.05 > 1.05 / (l + 0.05) ? "#000000" : "#ffffff";
}

type Child = Node | string | null | undefined | false;

// h builds an element; strings become text nodes, never markup.
function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string | boolean | undefined> = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue;
    if (k === "text") el.textContent = String(v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    el.append(typeof c === "string" ? document.createTextNode(c) : c);
  }
  return el;
}

let uid = 0;
const nextId = (p: string) => `${p}-${++uid}`;

const app = document.getElementById("app") as HTMLElement;
let client: HookferryClient;

// errorBox is the place next to a control where its API error shows.
function errorBox(): HTMLElement {
  const el = h("p", { class: "error", role: "alert", hidden: true });
  return el;
}

function showError(box: HTMLElement, status: number, err: ApiError | undefined): void {
  if (status === 401) return sessionEnded(err);
  box.textContent = err ? `${err.message} (${err.code})` : `The request failed (HTTP ${status}).`;
  box.hidden = false;
}

function clearError(box: HTMLElement): void {
  box.textContent = "";
  box.hidden = true;
}

// describe ties a control to its error box for screen readers.
function describe(control: HTMLElement, box: HTMLElement): void {
  box.id = box.id || nextId("err");
  control.setAttribute("aria-describedby", box.id);
}

function screen(title: string, ...children: Child[]): void {
  const heading = h("h1", { tabindex: "-1", text: title });
  app.replaceChildren(heading, ...children.filter((c): c is Node | string => !!c));
  heading.focus();
}

function sessionEnded(err?: ApiError): void {
  try { sessionStorage.removeItem(SESSION_KEY); } catch { /* nothing stored */ }
  screen("Session ended",
    h("p", { class: "error", role: "alert", id: "session-error", text: err ? `${err.message} (${err.code})` : "This portal link has no session." }),
    h("p", { text: "Open the portal again from the application that sent you here." }));
}

function fmtTime(s?: string): string {
  if (!s) return "—";
  const d = new Date(s);
  return isNaN(d.getTime()) ? s : d.toLocaleString();
}

function statusText(w: Webhook): string {
  return w.status === "PAUSED" && w.pause_reason ? `${w.status} (${w.pause_reason})` : w.status;
}

// ---- the list ----

async function showList(): Promise<void> {
  const box = errorBox();
  const refresh = h("button", { type: "button", id: "refresh-list", text: "Refresh" });
  const add = h("button", { type: "button", id: "add-webhook", class: "primary", text: "Add a webhook" });
  describe(refresh, box);
  refresh.addEventListener("click", () => void showList());
  add.addEventListener("click", () => void showForm());
  const body = h("div", { id: "webhooks" }, h("p", { text: "Loading…" }));
  screen("Webhooks", h("div", { class: "row" }, add, refresh), box, body);
  const { data, error, response } = await client.GET("/v1/webhooks");
  if (!data) return showError(box, response.status, error);
  if (data.items.length === 0) {
    body.replaceChildren(h("p", { id: "no-webhooks", text: "No webhooks yet. Add one to receive events." }));
    return;
  }
  const table = h("table", {},
    h("caption", { class: "visually-hidden", text: "Your webhooks" }),
    h("thead", {}, h("tr", {}, ...["URL", "Status", "Buffered", "Event types", "Ordered", "Signing", ""].map((t) => h("th", { scope: "col", text: t })))));
  const tbody = h("tbody");
  for (const w of data.items) {
    const open = h("button", { type: "button", class: "link", "data-webhook": w.id, "aria-label": `Manage ${w.url}` }, "Manage");
    open.addEventListener("click", () => void showWebhook(w.id));
    tbody.append(h("tr", { "data-id": w.id },
      h("td", { class: "url", text: w.url }),
      h("td", { class: "status", text: statusText(w) }),
      h("td", { class: "buffered", text: String(w.buffered_events) }),
      h("td", { text: w.subscription.event_types.join(", ") }),
      h("td", { text: w.ordered ? "yes" : "no" }),
      h("td", { text: w.signing }),
      h("td", {}, open)));
  }
  table.append(tbody);
  body.replaceChildren(h("div", { class: "scroll" }, table));
}

// ---- register and change ----

async function showForm(existing?: Webhook): Promise<void> {
  const editing = !!existing;
  const types = await client.GET("/v1/event-types");
  const urlId = nextId("url");
  const url = h("input", { id: urlId, name: "url", type: "url", required: true, autocomplete: "off", spellcheck: "false", placeholder: "https://example.com/webhooks" });
  url.value = existing?.url ?? "";
  const urlErr = errorBox();
  describe(url, urlErr);
  const fieldset = h("fieldset", { id: "event-types" }, h("legend", { text: "Event types" }));
  const typesErr = errorBox();
  describe(fieldset, typesErr);
  const chosen = new Set(existing?.subscription.event_types ?? []);
  for (const t of (types.data?.items ?? []) as EventType[]) {
    const id = nextId("type");
    const cb = h("input", { type: "checkbox", id, name: "event_type", value: t.name });
    cb.checked = chosen.has(t.name);
    fieldset.append(h("div", { class: "check" }, cb, h("label", { for: id }, h("span", { class: "mono", text: t.name }), t.description ? ` — ${t.description}` : "")));
  }
  if (!types.data) showError(typesErr, types.response.status, types.error);
  const orderedId = nextId("ordered");
  const ordered = h("input", { type: "checkbox", id: orderedId, name: "ordered" });
  ordered.checked = existing?.ordered ?? false;
  const signingId = nextId("signing");
  const signing = h("select", { id: signingId, name: "signing" },
    h("option", { value: "SYMMETRIC", text: "Symmetric (shared secret, HMAC-SHA256)" }),
    h("option", { value: "ASYMMETRIC", text: "Asymmetric (ed25519 public key)" }));
  signing.value = existing?.signing ?? "SYMMETRIC";
  const submit = h("button", { type: "submit", class: "primary", id: "save-webhook", text: editing ? "Save changes" : "Add webhook" });
  const cancel = h("button", { type: "button", id: "cancel-form", text: "Cancel" });
  const formErr = errorBox();
  describe(submit, formErr);
  cancel.addEventListener("click", () => void (existing ? showWebhook(existing.id) : showList()));
  const form = h("form", { novalidate: true },
    h("div", { class: "field" }, h("label", { for: urlId, text: "Endpoint URL (https)" }), url, urlErr),
    fieldset, typesErr,
    h("div", { class: "check" }, ordered, h("label", { for: orderedId, text: "Ordered: deliver one at a time, in publish order" })),
    h("div", { class: "field" }, h("label", { for: signingId, text: "Signing" }), signing),
    h("div", { class: "row" }, submit, cancel), formErr);
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    void (async () => {
      for (const b of [urlErr, typesErr, formErr]) clearError(b);
      const eventTypes = [...fieldset.querySelectorAll<HTMLInputElement>("input[type=checkbox]:checked")].map((c) => c.value);
      const body = { url: url.value.trim(), subscription: { event_types: eventTypes }, ordered: ordered.checked, signing: signing.value as Webhook["signing"] };
      submit.disabled = true;
      const res = existing
        ? await client.PATCH("/v1/webhooks/{webhook_id}", { params: { path: { webhook_id: existing.id } }, body })
        : await client.POST("/v1/webhooks", { body });
      submit.disabled = false;
      if (res.data) return showWebhook(res.data.id, editing ? "Changes saved." : "Webhook added.");
      const code = res.error?.code ?? "";
      const target = code.startsWith("INVALID_URL") || code === "DUPLICATE_URL" ? urlErr : code === "INVALID_SUBSCRIPTION" ? typesErr : formErr;
      showError(target, res.response.status, res.error);
      (target === urlErr ? url : target === typesErr ? fieldset.querySelector("input") ?? submit : submit).focus();
    })();
  });
  screen(editing ? "Change webhook" : "Add a webhook", form);
}

// ---- one webhook ----

async function showWebhook(id: string, notice?: string): Promise<void> {
  const { data: w, error, response } = await client.GET("/v1/webhooks/{webhook_id}", { params: { path: { webhook_id: id } } });
  if (!w) {
    const box = errorBox();
    const back = h("button", { type: "button", id: "back", text: "Back to webhooks" });
    back.addEventListener("click", () => void showList());
    screen("Webhook", box, back);
    return showError(box, response.status, error);
  }
  const back = h("button", { type: "button", id: "back", class: "link", text: "← All webhooks" });
  back.addEventListener("click", () => void showList());

  const facts = h("dl", { class: "facts" },
    h("dt", { text: "URL" }), h("dd", { class: "url", id: "webhook-url", text: w.url }),
    h("dt", { text: "Status" }), h("dd", { id: "webhook-status", text: statusText(w) }),
    h("dt", { text: "Buffered events" }), h("dd", { id: "webhook-buffered", text: String(w.buffered_events) }),
    h("dt", { text: "Event types" }), h("dd", { id: "webhook-types", text: w.subscription.event_types.join(", ") }),
    h("dt", { text: "Ordered" }), h("dd", { id: "webhook-ordered", text: w.ordered ? "yes" : "no" }),
    h("dt", { text: "Signing" }), h("dd", { id: "webhook-signing", text: w.signing }),
    h("dt", { text: "Created" }), h("dd", { text: fmtTime(w.created_at) }));

  // Actions, each with its error next to it.
  const action = (label: string, btnId: string, run: (box: HTMLElement) => Promise<void>, cls?: string) => {
    const b = h("button", { type: "button", id: btnId, class: cls, text: label });
    const box = errorBox();
    describe(b, box);
    b.addEventListener("click", () => {
      clearError(box);
      b.disabled = true;
      void run(box).finally(() => { b.disabled = false; });
    });
    return h("div", { class: "action" }, b, box);
  };
  const path = { params: { path: { webhook_id: w.id } } };
  const toggle = w.status === "PAUSED"
    ? action("Resume", "resume", async (box) => {
      const r = await client.POST("/v1/webhooks/{webhook_id}/unpause", path);
      if (r.data) return showWebhook(w.id, "Resumed: buffered events are being delivered.");
      showError(box, r.response.status, r.error);
    })
    : action("Pause", "pause", async (box) => {
      const r = await client.POST("/v1/webhooks/{webhook_id}/pause", path);
      if (r.data) return showWebhook(w.id, "Paused: new events are buffered.");
      showError(box, r.response.status, r.error);
    });
  const edit = action("Change", "edit", async () => showForm(w));
  const ping = action("Send test event", "ping", async (box) => {
    const r = await client.POST("/v1/webhooks/{webhook_id}/ping", path);
    if (r.data) { setNotice(`Test event ${r.data.id} queued.`); return loadDeliveries(); }
    showError(box, r.response.status, r.error);
  });
  const del = action("Delete", "delete", async (box) => {
    if (!(await confirmDelete(w.url))) return;
    const r = await client.DELETE("/v1/webhooks/{webhook_id}", path);
    if (r.data) return showList();
    showError(box, r.response.status, r.error);
  }, "danger");

  // The signing secret or public key, shown on request.
  const secretOut = h("output", { id: "secret", class: "mono", "aria-live": "polite" });
  const copy = h("button", { type: "button", id: "copy-secret", hidden: true, text: "Copy" });
  const copyNote = h("span", { class: "note", "aria-live": "polite" });
  copy.addEventListener("click", () => {
    void navigator.clipboard?.writeText(secretOut.textContent ?? "").then(
      () => { copyNote.textContent = "Copied."; },
      () => { copyNote.textContent = "Copy failed: select the text and copy it."; });
  });
  const showSecret = (secret: string, expires?: string) => {
    secretOut.textContent = secret;
    copy.hidden = false;
    copyNote.textContent = expires ? `The previous one keeps signing until ${fmtTime(expires)}.` : "";
  };
  const reveal = action(w.signing === "ASYMMETRIC" ? "Reveal public key" : "Reveal secret", "reveal", async (box) => {
    const r = await client.GET("/v1/webhooks/{webhook_id}", { params: { path: { webhook_id: w.id }, query: { show_authentication: true } } });
    if (r.data?.authentication) return showSecret(r.data.authentication.secret);
    showError(box, r.response.status, r.error);
  });
  const rotate = action(w.signing === "ASYMMETRIC" ? "Rotate key" : "Rotate secret", "rotate", async (box) => {
    const r = await client.POST("/v1/webhooks/{webhook_id}/rotate-secret", { params: { path: { webhook_id: w.id } }, body: {} });
    if (r.data?.authentication) { setNotice("Rotated. Give the new one to your receiver."); return showSecret(r.data.authentication.secret, r.data.previous_secret_expires_at); }
    showError(box, r.response.status, r.error);
  });

  // The delivery log.
  const statusId = "delivery-status";
  const filter = h("select", { id: statusId },
    h("option", { value: "", text: "All" }), h("option", { value: "PENDING", text: "Pending" }),
    h("option", { value: "DELIVERED", text: "Delivered" }), h("option", { value: "FAILED", text: "Failed" }));
  const refresh = h("button", { type: "button", id: "refresh-deliveries", text: "Refresh" });
  const logErr = errorBox();
  describe(refresh, logErr);
  const log = h("div", { id: "deliveries" });
  const pager = h("div", { class: "row" });
  let cursors: (string | undefined)[] = [undefined]; // the cursor of each page seen
  let page = 0;
  let asked = 0; // the latest load: an older one's answer, arriving after it, is dropped
  const loadDeliveries = async (): Promise<void> => {
    clearError(logErr);
    const status = (filter.value || undefined) as Delivery["status"] | undefined;
    const mine = ++asked;
    const r = await client.GET("/v1/webhooks/{webhook_id}/deliveries", { params: { path: { webhook_id: w.id }, query: { status, cursor: cursors[page], limit: 20 } } });
    if (mine !== asked) return;
    if (!r.data) return showError(logErr, r.response.status, r.error);
    renderDeliveries(r.data.items);
    pager.replaceChildren();
    if (page > 0) {
      const prev = h("button", { type: "button", id: "prev-page", text: "Newer" });
      prev.addEventListener("click", () => { page--; void loadDeliveries(); });
      pager.append(prev);
    }
    if (r.data.next_cursor) {
      cursors[page + 1] = r.data.next_cursor;
      const next = h("button", { type: "button", id: "next-page", text: "Older" });
      next.addEventListener("click", () => { page++; void loadDeliveries(); });
      pager.append(next);
    }
  };
  const renderDeliveries = (items: Delivery[]) => {
    if (items.length === 0) {
      log.replaceChildren(h("p", { id: "no-deliveries", text: "No deliveries." }));
      return;
    }
    const tbody = h("tbody");
    for (const d of items) {
      const box = errorBox();
      const redo = h("button", { type: "button", class: "redeliver", "data-delivery": d.id, "aria-label": `Redeliver ${d.event_type} ${d.id}`, text: "Redeliver" });
      describe(redo, box);
      redo.addEventListener("click", () => {
        clearError(box);
        void client.POST("/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver", { params: { path: { webhook_id: w.id, delivery_id: d.id } } }).then((r) => {
          if (r.response.ok) { setNotice(`Delivery ${d.id} queued again.`); return loadDeliveries(); }
          showError(box, r.response.status, r.error);
        });
      });
      tbody.append(h("tr", { "data-delivery": d.id },
        h("td", { text: fmtTime(d.created_at) }),
        h("td", { class: "mono", text: d.event_type }),
        h("td", { class: "dstatus", text: d.status }),
        h("td", { class: "attempts", text: String(d.attempts) }),
        h("td", { text: d.last_status_code === undefined ? "—" : String(d.last_status_code) }),
        h("td", { class: "last-error", text: d.last_error || "—" }),
        h("td", { text: d.status === "DELIVERED" ? `delivered ${fmtTime(d.delivered_at)}` : d.next_attempt_at ? `next ${fmtTime(d.next_attempt_at)}` : "—" }),
        h("td", {}, redo, box)));
    }
    log.replaceChildren(h("div", { class: "scroll" }, h("table", {},
      h("caption", { class: "visually-hidden", text: "Deliveries, newest first" }),
      h("thead", {}, h("tr", {}, ...["Created", "Event type", "Status", "Attempts", "Last status", "Last error", "Time", ""].map((t) => h("th", { scope: "col", text: t })))),
      tbody)));
  };
  filter.addEventListener("change", () => { cursors = [undefined]; page = 0; void loadDeliveries(); });
  refresh.addEventListener("click", () => void loadDeliveries());

  const noticeEl = h("p", { id: "notice", class: "notice", role: "status" });
  const setNotice = (t: string) => { noticeEl.textContent = t; };
  if (notice) setNotice(notice);

  screen("Webhook",
    back, noticeEl, facts,
    h("div", { class: "actions" }, toggle, edit, ping, del),
    h("section", { "aria-labelledby": "secret-h" },
      h("h2", { id: "secret-h", text: w.signing === "ASYMMETRIC" ? "Public key" : "Signing secret" }),
      h("div", { class: "actions" }, reveal, rotate),
      h("div", { class: "row" }, secretOut, copy, copyNote)),
    h("section", { "aria-labelledby": "log-h" },
      h("h2", { id: "log-h", text: "Deliveries" }),
      h("div", { class: "row" }, h("label", { for: statusId, text: "Status" }), filter, refresh), logErr,
      log, pager));
  await loadDeliveries();
}

// confirmDelete asks in the page's <dialog>; Escape or Cancel says no.
function confirmDelete(url: string): Promise<boolean> {
  const dialog = document.getElementById("confirm") as HTMLDialogElement;
  (document.getElementById("confirm-text") as HTMLElement).textContent = `${url} stops receiving events, and its buffered events are dropped.`;
  const ok = document.getElementById("confirm-ok") as HTMLButtonElement;
  const cancel = document.getElementById("confirm-cancel") as HTMLButtonElement;
  const opener = document.activeElement as HTMLElement | null;
  return new Promise((resolve) => {
    const done = (yes: boolean) => {
      ok.removeEventListener("click", onOk);
      cancel.removeEventListener("click", onCancel);
      dialog.removeEventListener("close", onClose);
      if (dialog.open) dialog.close();
      opener?.focus();
      resolve(yes);
    };
    const onOk = () => done(true);
    const onCancel = () => done(false);
    const onClose = () => done(false);
    ok.addEventListener("click", onOk);
    cancel.addEventListener("click", onCancel);
    dialog.addEventListener("close", onClose);
    dialog.showModal();
    cancel.focus();
  });
}

function main(): void {
  applyTheme();
  const token = takeSession();
  if (!token) return sessionEnded();
  client = createHookferryClient({ baseUrl: location.origin, token });
  void showList();
}

main();
