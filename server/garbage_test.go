package server_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/hookferry/hookferry/apitest"
	"github.com/hookferry/hookferry/auth"
	hookferry "github.com/hookferry/hookferry/clients/go"
	"github.com/hookferry/hookferry/server"
	"github.com/hookferry/hookferry/store/storetest"
	"github.com/stretchr/testify/require"
)

// Issue 9 item 7: garbage is refused with the documented 4xx on both databases,
// never a 500, and never stored.

// rawResponse is an answer to a request the generated client cannot send.
type rawResponse struct {
	status int
	body   []byte
}

func (r rawResponse) StatusCode() int { return r.status }

// raw sends a request as written, with token, through the contract-checking
// client; path may hold escapes the generated client would re-escape.
func (e *env) raw(method, path, token, contentType, body string) rawResponse {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.url+path, rd)
	require.NoError(e.t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	res, err := apitest.Client(e.t).Do(req)
	require.NoError(e.t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(e.t, err)
	return rawResponse{status: res.StatusCode, body: b}
}

// badIDs cannot be the id of anything: NUL, a lone byte that is not UTF-8, and
// an invalid two-byte sequence.
var badIDs = []string{"%00", "%ff", "%c3%28", "wh_%00x", "wh_x%ff"}

func TestBadTextInPathIsNotFound(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, be storetest.Backend) {
		e := setup(t, be)
		admin := e.token("acme", "alice", auth.PermissionWebhookManagement, auth.PermissionEventsPublish)
		w := e.register(e.alice, "https://example.com/h", "order.created")
		for _, id := range badIDs {
			// The same answers as for an id that does not exist.
			ops := []struct {
				method, path string
				code         hookferry.ErrorCode
			}{
				{http.MethodGet, "/v1/webhooks/" + id, hookferry.ErrorCodeWEBHOOKNOTFOUND},
				{http.MethodDelete, "/v1/webhooks/" + id, hookferry.ErrorCodeWEBHOOKNOTFOUND},
				{http.MethodPost, "/v1/webhooks/" + id + "/pause", hookferry.ErrorCodeWEBHOOKNOTFOUND},
				{http.MethodPost, "/v1/webhooks/" + id + "/unpause", hookferry.ErrorCodeWEBHOOKNOTFOUND},
				{http.MethodGet, "/v1/webhooks/" + id + "/deliveries", hookferry.ErrorCodeWEBHOOKNOTFOUND},
				{http.MethodPost, "/v1/webhooks/" + id + "/deliveries/dlv_1/redeliver", hookferry.ErrorCodeWEBHOOKNOTFOUND},
				{http.MethodPost, "/v1/webhooks/" + w.Id + "/deliveries/" + id + "/redeliver", hookferry.ErrorCodeDELIVERYNOTFOUND},
				{http.MethodPost, "/v1/webhooks/" + id + "/ping", hookferry.ErrorCodeWEBHOOKNOTFOUND},
			}
			for _, op := range ops {
				res := e.raw(op.method, op.path, admin, "", "")
				requireError(t, res, res.body, http.StatusNotFound, op.code)
			}
		}
		// The webhook that does exist is untouched.
		got := e.getWebhook(e.alice, w.Id)
		require.Equal(t, hookferry.WebhookStatusACTIVE, got.Status)
	})
}

func TestBadTextInQueryIsInvalidRequest(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, be storetest.Backend) {
		e := setup(t, be)
		admin := e.token("acme", "alice", auth.PermissionWebhookManagement)
		w := e.register(e.alice, "https://example.com/h", "order.created")
		for _, bad := range []string{"%00", "%ff", "%c3%28", "x%00y"} {
			for _, path := range []string{
				"/v1/webhooks?cursor=" + bad,
				"/v1/webhooks/" + w.Id + "/deliveries?cursor=" + bad,
				"/v1/webhooks/" + w.Id + "/deliveries?status=" + bad,
			} {
				res := e.raw(http.MethodGet, path, admin, "", "")
				requireError(t, res, res.body, http.StatusBadRequest, hookferry.ErrorCodeINVALIDREQUEST)
			}
		}
	})
}

func TestBadJSONBodyIsInvalidRequest(t *testing.T) {
	t.Parallel()
	register := []string{
		`{"url":"https://example.com/a","subscription":{"event_types":["order.created"]}} xx`,
		`{"url":"https://example.com/a","subscription":{"event_types":["order.created"]}}{"url":"https://example.com/b","subscription":{"event_types":["order.created"]}}`,
		`{"url":"https://example.com/a","url":"https://example.com/b","subscription":{"event_types":["order.created"]}}`,
		`{"url":"https://example.com/a","subscription":{"event_types":["order.created"],"event_types":["order.created"]}}`,
		`{"url":"https://example.com/a\u0000","subscription":{"event_types":["order.created"]}}`,
		"{\"url\":\"https://example.com/a\xff\",\"subscription\":{\"event_types\":[\"order.created\"]}}",
		`{"url":"https://example.com/a\ud800","subscription":{"event_types":["order.created"]}}`,
	}
	publish := []string{
		`{"type":"order.created","data":{}} xx`,
		`{"type":"order.created","data":{}}{"type":"order.created","data":{}}`,
		`{"type":"order.created","data":{},"id":"a","id":"b"}`,
		`{"type":"order.created","data":{"k":1,"k":2}}`,
		`{"type":"order.created","data":{},"id":"\u0000"}`,
		`{"type":"order.created","data":{},"id":"k\u0000"}`,
		`{"type":"order.created","data":{},"audience":{"user_ids":["\u0000"]}}`,
		`{"type":"order.created","data":{},"audience":{"user_ids":["alice\u0000"]}}`,
		`{"type":"order.created","data":{"note":"\u0000"}}`,
		"{\"type\":\"order.created\",\"data\":{},\"id\":\"k\xff\"}",
		"{\"type\":\"order.created\",\"data\":{},\"id\":\"k\xfe\"}",
		"{\"type\":\"order.created\",\"data\":{},\"id\":\"k\xc3\x28\"}",
		`{"type":"order.created","data":{},"id":"k\ud800"}`,
		`{"type":"order.created","data":{},"id":"k\udc00\ud800"}`,
		`{"type":"order.created","data":{},"audience":{"user_ids":["\udfff"]}}`,
	}
	eachBackend(t, func(t *testing.T, be storetest.Backend) {
		e := setup(t, be)
		admin := e.token("acme", "alice", auth.PermissionWebhookManagement)
		for _, body := range register {
			res := e.raw(http.MethodPost, "/v1/webhooks", admin, "application/json", body)
			requireError(t, res, res.body, http.StatusBadRequest, hookferry.ErrorCodeINVALIDREQUEST)
		}
		list, err := e.alice.ListWebhooksWithResponse(ctx, nil)
		require.NoError(t, err)
		require.Empty(t, list.JSON200.Items, "a refused registration was stored")

		w := e.register(e.alice, "https://example.com/h", "order.created")
		producer := e.token("acme", "producer", auth.PermissionEventsPublish)
		for _, body := range publish {
			res := e.raw(http.MethodPost, "/v1/events", producer, "application/json", body)
			requireError(t, res, res.body, http.StatusBadRequest, hookferry.ErrorCodeINVALIDREQUEST)
		}
		require.Empty(t, e.deliveries(e.alice, w.Id), "a refused event was stored")

		// A valid surrogate pair, and U+FFFD sent as itself, are fine and kept.
		for _, id := range []string{`k\ud83d\ude00`, `k\ufffd`} {
			res := e.raw(http.MethodPost, "/v1/events", producer, "application/json", `{"type":"order.created","data":{},"id":"`+id+`"}`)
			require.Equal(t, http.StatusAccepted, res.status, "%s", res.body)
		}
		require.Len(t, e.deliveries(e.alice, w.Id), 2)
	})
}

func TestMediaTypeIsCaseInsensitive(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, be storetest.Backend) {
		e := setup(t, be)
		admin := e.token("acme", "alice", auth.PermissionWebhookManagement)
		for i, ct := range []string{
			"APPLICATION/JSON",
			"Application/Json",
			"application/json; charset=UTF-8",
			"APPLICATION/JSON; CHARSET=utf-8",
			"application/json;charset=Utf-8",
		} {
			body := `{"url":"https://example.com/` + string(rune('a'+i)) + `","subscription":{"event_types":["order.created"]}}`
			res := e.raw(http.MethodPost, "/v1/webhooks", admin, ct, body)
			require.Equal(t, http.StatusCreated, res.status, "Content-Type %q: %s", ct, res.body)
		}
		res := e.raw(http.MethodPost, "/v1/webhooks", admin, "text/plain", `{"url":"https://example.com/z","subscription":{"event_types":["order.created"]}}`)
		requireError(t, res, res.body, http.StatusBadRequest, hookferry.ErrorCodeINVALIDREQUEST)
	})
}

func TestHostsJudgedAsIDNAMapsThem(t *testing.T) {
	t.Parallel()
	private := []string{
		"https://１２７.０.０.１/",
		"https://127。0。0。1/",
		"https://①②⑦.⓪.⓪.①/",
		"https://ｌｏｃａｌｈｏｓｔ/",
		"https://ⓛⓞⓒⓐⓛⓗⓞⓢⓣ/",
		"https://local\u00adhost/",
		"https://[::ffff:0:7f00:1]/",
		"https://[::ffff:7f00:1]/",
		"https://[::ffff:0:a00:1]/",
	}
	refused := []string{"https://xn--a/", "https://a\u202eb.example/", "https://\u0301a.com/"}
	duplicates := []string{
		"https://exam\u00adple.com/h",
		"https://exam\u200bple.com/h",
		"https://ｅｘａｍｐｌｅ.ｃｏｍ/h",
		"https://ⓔⓧⓐⓜⓟⓛⓔ.com/h",
		"https://EXAMPLE.com./h",
	}
	eachBackend(t, func(t *testing.T, be storetest.Backend) {
		e := setup(t, be)
		for _, u := range append(private, refused...) {
			res, err := e.alice.RegisterWebhookWithResponse(ctx, registerBody(u))
			require.NoError(t, err)
			requireError(t, res, res.Body, http.StatusBadRequest, hookferry.ErrorCodeINVALIDURL)
		}
		w := e.register(e.alice, "https://example.com/h")
		for _, u := range duplicates {
			res, err := e.alice.RegisterWebhookWithResponse(ctx, registerBody(u))
			require.NoError(t, err)
			requireError(t, res, res.Body, http.StatusConflict, hookferry.ErrorCodeDUPLICATEURL)
		}
		list, err := e.alice.ListWebhooksWithResponse(ctx, nil)
		require.NoError(t, err)
		require.Len(t, list.JSON200.Items, 1)
		require.Equal(t, w.Id, list.JSON200.Items[0].Id)

		// The stored and answered URL is the normalised one.
		idn := e.register(e.alice, "HTTPS://ＢÜＣＨＥＲ.de:443/x")
		require.Equal(t, "https://xn--bcher-kva.de/x", idn.Url)
		require.Equal(t, "https://xn--bcher-kva.de/x", e.getWebhook(e.alice, idn.Id).Url)
	})
	t.Run("private targets allowed", func(t *testing.T) {
		t.Parallel()
		e := setup(t, storetest.Backends()[0], func(c *server.Config) { c.AllowPrivateTargets = true })
		w := e.register(e.alice, "https://ｌｏｃａｌｈｏｓｔ:8443/h")
		require.Equal(t, "https://localhost:8443/h", w.Url)
		w = e.register(e.alice, "https://１２７.０.０.１/h")
		require.Equal(t, "https://127.0.0.1/h", w.Url)
	})
}
