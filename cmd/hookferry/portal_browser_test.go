package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/hookferry/hookferry/auth"
	hookferry "github.com/hookferry/hookferry/clients/go"
	"github.com/hookferry/hookferry/store"
	"github.com/hookferry/hookferry/store/storetest"
	"github.com/stretchr/testify/require"
)

// xssURL is a webhook URL that would run script if the page rendered it as markup.
const xssURL = "https://example.com/?q=<img src=x onerror=alert(1)>"

// browserTools finds Chromium and axe-core: a skip without them, a failure
// under CI=true (.ci/run installs both).
func browserTools(t *testing.T) (chromium, axe string) {
	t.Helper()
	missing := func(format string, args ...any) {
		t.Helper()
		if os.Getenv("CI") == "true" {
			t.Fatalf(format, args...)
		}
		t.Skipf(format, args...)
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			chromium = p
			break
		}
	}
	if chromium == "" {
		missing("portal browser test: no chromium on PATH (apt-get install chromium)")
	}
	b, err := os.ReadFile(filepath.Join("..", "..", "portal", "web", "node_modules", "axe-core", "axe.min.js"))
	if err != nil {
		missing("portal browser test: axe-core is not installed (cd portal/web && npm ci): %v", err)
	}
	return chromium, string(b)
}

// TestPortalInBrowser goes through the portal in Chromium as a person would,
// with the keyboard: a session minted through the API, register a webhook on a
// local HTTPS receiver, see a published event's delivery, redeliver it, pause,
// see the buffered count, resume, reveal and rotate the secret, delete. Then
// the XSS URL shown as text, the theme, the frame-ancestors header and an
// expired session. axe-core checks every screen.
func TestPortalInBrowser(t *testing.T) {
	t.Parallel()
	chromium, axe := browserTools(t)
	shots := os.Getenv("HOOKFERRY_PORTAL_SCREENSHOTS")
	if shots == "" {
		var err error
		shots, err = os.MkdirTemp("", "hookferry-portal-")
		require.NoError(t, err)
	}
	for _, be := range storetest.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(shots, be.Name)
			require.NoError(t, os.MkdirAll(dir, 0o755))
			t.Logf("screenshots in %s", dir)
			portalFlow(t, be.URL(t), chromium, axe, dir)
		})
	}
}

type browser struct {
	t       *testing.T
	ctx     context.Context
	axe     string
	shots   string
	dialogs atomic.Int64
	mu      sync.Mutex
	errors  []string // uncaught exceptions and console errors, CSP violations among them
}

func portalFlow(t *testing.T, db, chromium, axe, shots string) {
	var received atomic.Int64
	receiver := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		received.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(receiver.Close)
	embedder := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><title>Embedding app</title><iframe id="portal" title="Webhooks" src="%s"></iframe>`, r.URL.Query().Get("src"))
	}))
	t.Cleanup(embedder.Close)
	stranger := httptest.NewServer(embedder.Config.Handler)
	t.Cleanup(stranger.Close)

	srv := startServer(t, "HOOKFERRY_DATABASE_URL="+db, "HOOKFERRY_ALLOW_PRIVATE_TARGETS=true",
		"HOOKFERRY_DELIVERY_CA_FILE="+writeCA(t, receiver),
		"HOOKFERRY_RETRY_SCHEDULE=100ms,100ms", "HOOKFERRY_DELIVERY_TIMEOUT=2s", "HOOKFERRY_DELIVERY_LEASE=6s",
		"HOOKFERRY_PORTAL_FRAME_ANCESTORS='self' "+embedder.URL)
	ctx := context.Background()
	mint := func(user, perm string) string {
		code, out, stderr := run(t, "token", "create", "--database-url", db, "--tenant", "acme", "--user", user, "--permission", perm)
		require.Equal(t, 0, code, stderr)
		return strings.TrimSpace(out)
	}
	backend := client(t, srv.url(), mint("backend", string(auth.PermissionPortalSessions)))
	publisher := client(t, srv.url(), mint("orders", string(auth.PermissionEventsPublish)))
	publish := func() {
		t.Helper()
		res, err := publisher.PublishEventWithResponse(ctx, hookferry.PublishEventJSONRequestBody{Type: "order.created", Data: []byte(`{"order":1}`)})
		require.NoError(t, err)
		require.Equal(t, http.StatusAccepted, res.StatusCode(), "%s", res.Body)
	}

	// The tenant's backend mints a session for alice.
	res, err := backend.CreatePortalSessionWithResponse(ctx, hookferry.CreatePortalSessionJSONRequestBody{UserId: "alice"})
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, res.StatusCode(), "%s", res.Body)
	sessionURL := srv.url() + res.JSON201.Url
	_, credential, _ := strings.Cut(res.JSON201.Url, "#session=")
	alice := client(t, srv.url(), credential) // the same session, through the API

	// The CSP, as served.
	page0, err := http.Get(srv.url() + "/portal/")
	require.NoError(t, err)
	_ = page0.Body.Close()
	csp := page0.Header.Get("Content-Security-Policy")
	require.Contains(t, csp, "script-src 'self';")
	require.NotContains(t, csp, "unsafe")
	require.True(t, strings.HasSuffix(csp, "frame-ancestors 'self' "+embedder.URL), csp)

	b := newBrowser(t, chromium, axe, shots)

	// 1. The list, empty; the credential has left the address bar.
	b.do(chromedp.Navigate(sessionURL), chromedp.WaitVisible(chromedp.CSS("#no-webhooks")))
	require.Equal(t, "", b.eval(`location.hash`), "the credential is out of the address bar")
	b.check("1-empty-list")

	// 2. Register, with the keyboard: first an http URL, whose error shows next to the field.
	b.press("#add-webhook", kb.Enter)
	b.do(chromedp.WaitVisible(chromedp.CSS("#save-webhook")))
	b.do(chromedp.SendKeys(chromedp.CSS("input[name=url]"), "http://127.0.0.1/hooks"))
	b.press(`input[value="order.created"]`, " ")
	b.press("#save-webhook", kb.Enter)
	b.do(chromedp.WaitVisible(chromedp.CSS("input[name=url] + .error")))
	urlErr := b.text("input[name=url] + .error")
	require.Contains(t, urlErr, "INVALID_URL_IS_NOT_USING_HTTPS", "the API's error next to the URL field")
	require.Equal(t, b.eval(`document.querySelector("input[name=url]").getAttribute("aria-describedby")`), b.eval(`document.querySelector("input[name=url] + .error").id`))
	b.check("2-register-error")
	b.do(chromedp.Evaluate[chromedp.Void](`document.querySelector("input[name=url]").value = ""`), chromedp.SendKeys(chromedp.CSS("input[name=url]"), receiver.URL+"/hooks"))
	b.press("#save-webhook", kb.Enter)
	b.do(chromedp.WaitVisible(chromedp.CSS("#webhook-url")))
	require.Equal(t, receiver.URL+"/hooks", b.text("#webhook-url"))
	require.Equal(t, "ACTIVE", b.text("#webhook-status"))
	b.do(chromedp.WaitVisible(chromedp.CSS("#no-deliveries")))
	b.check("3-webhook")

	// 3. Publish through the API; the refresh control shows the delivery.
	publish()
	b.pollRefresh(`[...document.querySelectorAll("#deliveries .dstatus")].some(e => e.textContent === "DELIVERED")`)
	require.EqualValues(t, 1, received.Load())
	require.Equal(t, "1", b.text("#deliveries .attempts"))
	b.check("4-delivery-log")

	// 4. Redeliver.
	b.press("#deliveries button.redeliver", kb.Enter)
	b.do(chromedp.Poll[chromedp.Void](`document.getElementById("notice").textContent.includes("queued again")`, chromedp.WithPollingTimeout(10*time.Second)))
	require.Eventually(t, func() bool { return received.Load() >= 2 }, 15*time.Second, 20*time.Millisecond, "the redelivery arrives")
	// Delivered again (an attempt that failed on a loaded machine is retried:
	// at least once, so the counts below start from what was sent by then).
	b.pollRefresh(`(() => { const r = document.querySelector("#deliveries tbody tr"); return r !== null && r.querySelector(".dstatus").textContent === "DELIVERED" && Number(r.querySelector(".attempts").textContent) >= 2; })()`)
	sent := received.Load()

	// 5. Pause, publish 21 events, see the buffered count in the list; the
	// log's pages and status filter; resume.
	b.press("#pause", kb.Enter)
	b.do(chromedp.WaitVisible(chromedp.CSS("#resume")))
	require.Equal(t, "PAUSED (USER)", b.text("#webhook-status"))
	for range 21 {
		publish()
	}
	b.press("#back", kb.Enter)
	b.do(chromedp.WaitVisible(chromedp.CSS("#webhooks tbody tr")))
	b.do(chromedp.Poll[chromedp.Void](`(() => { const c = document.querySelector("#webhooks .buffered"); if (c && c.textContent === "21") return true; document.getElementById("refresh-list").click(); return false; })()`,
		chromedp.WithPollingInterval(200*time.Millisecond), chromedp.WithPollingTimeout(15*time.Second)))
	require.Equal(t, "PAUSED (USER)", b.text("#webhooks .status"))
	require.Equal(t, sent, received.Load(), "nothing goes out while paused")
	b.check("5-list-paused")
	b.press("#webhooks button[data-webhook]", kb.Enter)
	b.do(chromedp.WaitVisible(chromedp.CSS("#resume")), chromedp.WaitVisible(chromedp.CSS("#next-page")))
	rows := `String(document.querySelectorAll("#deliveries tbody tr").length)`
	require.Equal(t, "20", b.eval(rows), "a page of the log")
	b.press("#next-page", kb.Enter)
	b.do(chromedp.WaitVisible(chromedp.CSS("#prev-page")))
	require.Equal(t, "2", b.eval(rows), "the second page: the last buffered event and the first delivery")
	require.Equal(t, "DELIVERED", b.eval(`document.querySelector("#deliveries tbody tr:last-child .dstatus").textContent`))
	b.press("#prev-page", kb.Enter)
	b.do(chromedp.WaitNotPresent(chromedp.CSS("#prev-page")))
	b.press("#delivery-status", kb.ArrowDown) // the status filter: Pending
	b.do(chromedp.KeyEvent(kb.ArrowDown))     // Delivered
	b.do(chromedp.Poll[chromedp.Void](`document.querySelectorAll("#deliveries tbody tr").length === 1`, chromedp.WithPollingTimeout(10*time.Second)))
	require.Equal(t, "DELIVERED", b.text("#deliveries .dstatus"))
	b.press("#resume", kb.Enter)
	b.do(chromedp.WaitVisible(chromedp.CSS("#pause")))
	require.Eventually(t, func() bool { return received.Load() >= sent+21 }, 20*time.Second, 20*time.Millisecond, "the buffered events go out on resume")

	// Ping: the test event shows in the log.
	b.press("#ping", kb.Enter)
	b.do(chromedp.Poll[chromedp.Void](`document.getElementById("notice").textContent.startsWith("Test event")`, chromedp.WithPollingTimeout(10*time.Second)))
	b.pollRefresh(`[...document.querySelectorAll("#deliveries tbody tr")].some(r => r.textContent.includes("webhook.ping") && r.querySelector(".dstatus").textContent === "DELIVERED")`)
	require.GreaterOrEqual(t, received.Load(), sent+22)

	// Change: subscribe to one more type, make it ordered.
	b.press("#edit", kb.Enter)
	b.do(chromedp.WaitVisible(chromedp.CSS("#save-webhook")))
	b.check("5b-change")
	b.press(`input[value="order.cancelled"]`, " ")
	b.press(`input[name=ordered]`, " ")
	b.press("#save-webhook", kb.Enter)
	b.do(chromedp.Poll[chromedp.Void](`document.getElementById("webhook-types")?.textContent === "order.cancelled, order.created"`, chromedp.WithPollingTimeout(10*time.Second)))
	require.Equal(t, "yes", b.text("#webhook-ordered"))

	// 6. Reveal, then rotate the secret; what the page shows is the webhook's.
	b.press("#reveal", kb.Enter)
	b.do(chromedp.Poll[chromedp.Void](`document.getElementById("secret").textContent.startsWith("whsec_")`, chromedp.WithPollingTimeout(10*time.Second)))
	first := b.text("#secret")
	b.do(chromedp.WaitVisible(chromedp.CSS("#copy-secret")))
	b.press("#rotate", kb.Enter)
	b.do(chromedp.Poll[chromedp.Void](fmt.Sprintf(`document.getElementById("secret").textContent.startsWith("whsec_") && document.getElementById("secret").textContent !== %q`, first), chromedp.WithPollingTimeout(10*time.Second)))
	list, err := alice.ListWebhooksWithResponse(ctx, &hookferry.ListWebhooksParams{ShowAuthentication: ptr(true)})
	require.NoError(t, err)
	require.Len(t, list.JSON200.Items, 1)
	require.Equal(t, b.text("#secret"), list.JSON200.Items[0].Authentication.Secret)
	b.check("6-secret-rotated")

	// 7. Delete: Escape cancels the confirmation, Delete confirms it.
	b.press("#delete", kb.Enter)
	b.do(chromedp.WaitVisible(chromedp.CSS("#confirm")))
	require.Equal(t, "confirm-cancel", b.eval(`document.activeElement.id`), "the dialog starts on Cancel")
	b.check("7-confirm-delete")
	b.do(chromedp.KeyEvent(kb.Escape), chromedp.WaitNotVisible(chromedp.CSS("#confirm")))
	require.Equal(t, receiver.URL+"/hooks", b.text("#webhook-url"), "still there")
	b.press("#delete", kb.Enter)
	b.do(chromedp.WaitVisible(chromedp.CSS("#confirm")), chromedp.KeyEvent(kb.Tab))
	require.Equal(t, "confirm-ok", b.eval(`document.activeElement.id`))
	b.do(chromedp.KeyEvent(kb.Enter), chromedp.WaitVisible(chromedp.CSS("#no-webhooks")))
	list, err = alice.ListWebhooksWithResponse(ctx, nil)
	require.NoError(t, err)
	require.Empty(t, list.JSON200.Items)

	// 8. A URL that is markup shows as text and runs nothing.
	reg, err := alice.RegisterWebhookWithResponse(ctx, hookferry.RegisterWebhookJSONRequestBody{Url: xssURL, Subscription: hookferry.Subscription{EventTypes: []string{"order.created"}}})
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, reg.StatusCode(), "%s", reg.Body)
	b.press("#refresh-list", kb.Enter)
	b.do(chromedp.WaitVisible(chromedp.CSS("#webhooks td.url")))
	require.Equal(t, reg.JSON201.Url, b.text("#webhooks td.url"))
	require.Contains(t, b.text("#webhooks td.url"), "<img src=x onerror=alert(1)>")
	b.press("#webhooks button[data-webhook]", kb.Enter)
	b.do(chromedp.WaitVisible(chromedp.CSS("#webhook-url")))
	require.Equal(t, reg.JSON201.Url, b.text("#webhook-url"))
	require.Equal(t, "0", b.eval(`String(document.querySelectorAll("img").length)`), "no element made of the URL")
	require.Zero(t, b.dialogs.Load(), "no alert ran")
	b.check("8-xss-as-text")

	// 9. Theme and accent from the embedding page.
	b.do(chromedp.Navigate(srv.url()+"/portal/?theme=dark&accent=%23ff6600"), chromedp.WaitVisible(chromedp.CSS("#webhooks td.url")))
	require.Equal(t, "#ff6600", b.eval(`getComputedStyle(document.documentElement).getPropertyValue("--hf-accent").trim()`))
	require.Equal(t, "rgb(13, 17, 23)", b.eval(`getComputedStyle(document.body).backgroundColor`))
	b.check("9-dark-theme")
	b.do(chromedp.Navigate(srv.url()+"/portal/?accent=red;background:url(x)"), chromedp.WaitVisible(chromedp.CSS("#webhooks td.url")))
	require.Equal(t, "#2457d6", b.eval(`getComputedStyle(document.documentElement).getPropertyValue("--hf-accent").trim()`), "a bad colour is ignored")

	// 10. In a frame of the allowed embedder the portal works; another
	// origin's frame stays empty (frame-ancestors).
	res, err = backend.CreatePortalSessionWithResponse(ctx, hookferry.CreatePortalSessionJSONRequestBody{UserId: "alice"})
	require.NoError(t, err)
	framed := urlQueryEscape(srv.url() + res.JSON201.Url)
	b.do(chromedp.Navigate(embedder.URL+"/?src="+framed), chromedp.WaitVisible(chromedp.CSS("#portal")))
	require.NoError(t, b.framePoll(`document.querySelector("#webhooks td.url") !== null`, 15*time.Second), "the portal in the allowed frame")
	b.do(chromedp.Navigate(stranger.URL+"/?src="+framed), chromedp.WaitVisible(chromedp.CSS("#portal")))
	require.Error(t, b.framePoll(`document.querySelector("#app") !== null`, 3*time.Second), "the portal must not load in a frame of another origin")
	b.mu.Lock()
	b.errors = slices.DeleteFunc(b.errors, func(e string) bool { return strings.Contains(e, "frame-ancestors") })
	b.mu.Unlock()

	// 11. An expired session: the API's 401 is shown.
	st, err := store.Open(ctx, db, store.Options{Keys: storetest.Keys()})
	require.NoError(t, err)
	_, expired, err := st.CreateExpiringToken(ctx, "acme", "alice", []auth.Permission{auth.PermissionWebhookManagement}, time.Now().Add(-time.Second))
	require.NoError(t, err)
	require.NoError(t, st.Close())
	b.do(chromedp.Navigate("about:blank"), chromedp.Navigate(srv.url()+"/portal/#session="+expired), chromedp.WaitVisible(chromedp.CSS("#session-error")))
	require.Contains(t, b.text("#session-error"), "expired")
	require.Contains(t, b.text("#session-error"), "UNAUTHENTICATED")
	b.check("10-session-expired")

	b.mu.Lock()
	require.Empty(t, b.errors, "the page logged errors")
	b.mu.Unlock()
	require.NotContains(t, srv.log(), credential, "the session's credential reaches no server log")
	require.NotContains(t, srv.log(), expired)
}

func urlQueryEscape(s string) string {
	return strings.NewReplacer("%", "%25", "&", "%26", "#", "%23", "?", "%3F", "=", "%3D").Replace(s)
}

func newBrowser(t *testing.T, chromium, axe, shots string) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.WindowSize(1100, 900))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() { cancelTimeout(); cancel(); cancelAlloc() })
	b := &browser{t: t, ctx: ctx, axe: axe, shots: shots}
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate("about:blank")))
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for _, err := range dialogs {
			if err != nil {
				return
			}
			b.dialogs.Add(1)
			_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
		}
	}()
	console := chromedp.Console(ctx)
	go func() {
		for m, err := range console {
			if err != nil {
				return
			}
			// A failed request is an API error the page shows (the test
			// provokes 400 and 401); anything else logged as an error,
			// such as a CSP violation, fails the test.
			if m.IsException() || (m.Type == "error" && !strings.HasPrefix(m.Text, "Failed to load resource")) {
				b.mu.Lock()
				b.errors = append(b.errors, m.String())
				b.mu.Unlock()
			}
		}
	}()
	return b
}

func (b *browser) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	require.NoError(b.t, chromedp.Do(b.ctx, steps...))
}

func (b *browser) eval(js string) string {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](js))
	require.NoError(b.t, err, js)
	return v
}

func (b *browser) text(sel string) string {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.TextContent(chromedp.CSS(sel)))
	require.NoError(b.t, err, sel)
	return v
}

// press focuses the control and presses a key on it: the keyboard path.
func (b *browser) press(sel, key string) {
	b.t.Helper()
	b.do(chromedp.WaitVisible(chromedp.CSS(sel)), chromedp.Focus(chromedp.CSS(sel)), chromedp.KeyEvent(key))
}

// pollRefresh presses the delivery log's refresh control until cond holds.
func (b *browser) pollRefresh(cond string) {
	b.t.Helper()
	b.do(chromedp.Poll[chromedp.Void](fmt.Sprintf(`(() => { if (%s) return true; document.getElementById("refresh-deliveries").click(); return false; })()`, cond),
		chromedp.WithPollingInterval(200*time.Millisecond), chromedp.WithPollingTimeout(20*time.Second)))
}

// check runs axe-core on the screen (no serious or critical violation) and
// saves a screenshot.
func (b *browser) check(name string) {
	b.t.Helper()
	if b.eval(`typeof axe`) == "undefined" {
		b.do(chromedp.Evaluate[chromedp.Void](b.axe))
	}
	found, err := chromedp.Run(b.ctx, chromedp.Evaluate[[]string](`axe.run(document, {resultTypes: ["violations"]}).then(r => r.violations
		.filter(v => v.impact === "serious" || v.impact === "critical")
		.map(v => v.impact + " " + v.id + ": " + v.help + " at " + v.nodes.map(n => n.target.join(" ")).join(", ")))`, chromedp.EvalAwaitPromise))
	require.NoError(b.t, err)
	require.Empty(b.t, found, "axe-core on %s", name)
	png, err := chromedp.Run(b.ctx, chromedp.CaptureScreenshot())
	require.NoError(b.t, err)
	require.NoError(b.t, os.WriteFile(filepath.Join(b.shots, name+".png"), png, 0o644))
}

// framePoll waits for cond in the document of the page's iframe #portal.
func (b *browser) framePoll(cond string, timeout time.Duration) error {
	b.t.Helper()
	nodes, err := chromedp.Run(b.ctx, chromedp.Nodes(chromedp.CSS("#portal")))
	require.NoError(b.t, err)
	require.Len(b.t, nodes, 1)
	return chromedp.Do(b.ctx, chromedp.Poll[chromedp.Void](cond, chromedp.WithPollingInFrame(nodes[0]), chromedp.WithPollingTimeout(timeout)))
}
