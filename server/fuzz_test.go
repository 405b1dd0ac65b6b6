package server_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/hookferry/hookferry/auth"
	"github.com/hookferry/hookferry/server"
	"github.com/hookferry/hookferry/store"
	"github.com/hookferry/hookferry/store/storetest"
	"github.com/hookferry/hookferry/webhook"
)

// Issue 9 item 7: the HTTP surface, fuzzed over a real socket on SQLite and
// PostgreSQL (FuzzRegisterWebhook in misc_test.go is the in-process, SQLite-only
// check of the error shapes). The
// property: no 5xx, and a 2xx stores exactly what was sent. The seeds, which
// hold every finding of the issue, run in every `go test`.

// fuzzAPI is a running API on a real socket, for a fuzz target: one per
// backend, shared by every input of a fuzzing process.
type fuzzAPI struct {
	name, url, admin, producer string
	http                       *http.Client
}

func fuzzAPIs(f *testing.F) []fuzzAPI {
	f.Helper()
	var out []fuzzAPI
	for _, be := range storetest.Backends() {
		st, err := store.Open(context.Background(), be.URL(f), store.Options{Keys: storetest.Keys(), MaxOpenConns: 8})
		if err != nil {
			f.Fatal(err)
		}
		f.Cleanup(func() { _ = st.Close() })
		srv, err := server.New(st, server.Config{UnpauseCooldown: time.Second})
		if err != nil {
			f.Fatal(err)
		}
		hs := httptest.NewServer(srv.Handler())
		f.Cleanup(hs.Close)
		admin := fuzzToken(f, st, "alice", auth.PermissionWebhookManagement)
		producer := fuzzToken(f, st, "producer", auth.PermissionEventsPublish)
		out = append(out, fuzzAPI{name: be.Name, url: hs.URL, admin: admin, producer: producer, http: hs.Client()})
	}
	return out
}

func fuzzToken(f *testing.F, st *store.Store, user string, perms ...auth.Permission) string {
	f.Helper()
	_, secret, err := st.CreateToken(context.Background(), "acme", user, perms)
	if err != nil {
		f.Fatal(err)
	}
	return secret
}

// fuzzWebhooks registers a webhook for order.created at url on each API and
// returns their ids.
func fuzzWebhooks(f *testing.F, apis []fuzzAPI, url string) []string {
	f.Helper()
	ids := make([]string, len(apis))
	for i, a := range apis {
		status, res := a.do(f, http.MethodPost, "/v1/webhooks", a.admin, `{"url":"`+url+`","subscription":{"event_types":["order.created"]}}`)
		var w struct {
			ID string `json:"id"`
		}
		if status != http.StatusCreated || json.Unmarshal(res, &w) != nil {
			f.Fatalf("%s: register: %d %s", a.name, status, res)
		}
		ids[i] = w.ID
	}
	return ids
}

// do sends body as JSON with token; a 5xx or a failed round trip fails t.
func (a fuzzAPI) do(t testing.TB, method, path, token, body string) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, a.url+path, rd)
	if err != nil {
		t.Skip("not a request Go can send")
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := a.http.Do(req)
	if err != nil {
		t.Fatalf("%s: %s %s: %v", a.name, method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode >= 500 {
		t.Fatalf("%s: %s %s %q: %d %s", a.name, method, path, body, res.StatusCode, b)
	}
	return res.StatusCode, b
}

var registerSeeds = []string{
	`{"url":"https://example.com/h","subscription":{"event_types":["order.created"]}}`,
	`{"url":"HTTPS://Example.COM.:443","subscription":{"event_types":["payment.failed","order.created"]},"ordered":true}`,
	`{"url":"https://１２７.０.０.１/","subscription":{"event_types":["order.created"]}}`,
	`{"url":"https://ｌｏｃａｌｈｏｓｔ/","subscription":{"event_types":["order.created"]}}`,
	`{"url":"https://ⓛⓞⓒⓐⓛⓗⓞⓢⓣ/","subscription":{"event_types":["order.created"]}}`,
	`{"url":"https://[::ffff:0:7f00:1]/","subscription":{"event_types":["order.created"]}}`,
	`{"url":"https://exam\u00adple.com/h","subscription":{"event_types":["order.created"]}}`,
	`{"url":"https://exam\u200bple.com/h","subscription":{"event_types":["order.created"]}}`,
	`{"url":"https://ｅｘａｍｐｌｅ.com/h","subscription":{"event_types":["order.created"]}}`,
	`{"url":"https://xn--bcher-kva.de/","subscription":{"event_types":["order.created"]}}`,
	`{"url":"https://bücher.de/","subscription":{"event_types":["order.created"]}}`,
	`{"url":"https://example.com/a","subscription":{"event_types":["order.created"]}} xx`,
	`{"url":"https://example.com/a","subscription":{"event_types":["order.created"]}}{}`,
	`{"url":"https://example.com/a","url":"https://example.com/b","subscription":{"event_types":["order.created"]}}`,
	`{"url":"https://example.com/\u0000","subscription":{"event_types":["order.created"]}}`,
	"{\"url\":\"https://example.com/\xff\",\"subscription\":{\"event_types\":[\"order.created\"]}}",
	"{\"url\":\"https://\x9a\",\"subscription\":{\"event_types\":[\"order.created\"]}}",
	`{"url":"https://example.com/\ud800","subscription":{"event_types":["order.created"]}}`,
	`{"url":"https://example.com/","subscription":{"event_types":["order.created\u0000"]}}`,
	`{"url":"https://example.com/","subscription":{"event_types":[]}}`,
	`{"url":"https://example.com/ed","subscription":{"event_types":["order.created"]},"signing":"ASYMMETRIC"}`,
	`{"url":"https://example.com/s","subscription":{"event_types":["order.created"]},"signing":"asymmetric"}`,
	`{"url":"https://example.com/s","subscription":{"event_types":["order.created"]},"signing":"ASYMMETRIC\u0000"}`,
	`{"url":7}`,
	`[]`,
	``,
}

func FuzzRegisterWebhookEverywhere(f *testing.F) {
	for _, s := range registerSeeds {
		f.Add(s)
	}
	apis := fuzzAPIs(f)
	f.Fuzz(func(t *testing.T, body string) {
		for _, a := range apis {
			status, res := a.do(t, http.MethodPost, "/v1/webhooks", a.admin, body)
			if status == http.StatusBadRequest || status == http.StatusConflict {
				continue
			}
			if status != http.StatusCreated {
				t.Fatalf("%s: %q: %d %s", a.name, body, status, res)
			}
			if !utf8.ValidString(body) {
				t.Fatalf("%s: %q is not UTF-8, so it cannot be stored as sent, yet it answered %d", a.name, body, status)
			}
			var sent struct {
				URL          string `json:"url"`
				Subscription struct {
					EventTypes []string `json:"event_types"`
				} `json:"subscription"`
			}
			if err := json.Unmarshal([]byte(body), &sent); err != nil {
				t.Fatalf("%s: %q accepted (%d), but it is not JSON: %v", a.name, body, status, err)
			}
			want, err := webhook.CheckURL(sent.URL, false)
			if err != nil {
				t.Fatalf("%s: %q accepted, but its url fails CheckURL: %v", a.name, body, err)
			}
			var created struct {
				ID string `json:"id"`
			}
			if err := json.Unmarshal(res, &created); err != nil || created.ID == "" {
				t.Fatalf("%s: %d %s", a.name, status, res)
			}
			status, res = a.do(t, http.MethodGet, "/v1/webhooks/"+created.ID, a.admin, "")
			var got struct {
				URL          string `json:"url"`
				Subscription struct {
					EventTypes []string `json:"event_types"`
				} `json:"subscription"`
			}
			if status != http.StatusOK || json.Unmarshal(res, &got) != nil {
				t.Fatalf("%s: get %s: %d %s", a.name, created.ID, status, res)
			}
			if got.URL != want {
				t.Fatalf("%s: %q stored url %q, want %q", a.name, body, got.URL, want)
			}
			if !slices.Equal(got.Subscription.EventTypes, slices.Sorted(slices.Values(sent.Subscription.EventTypes))) {
				t.Fatalf("%s: %q stored event types %q", a.name, body, got.Subscription.EventTypes)
			}
			// Keep the user's webhooks few, so that the next input is not a duplicate.
			if status, res := a.do(t, http.MethodDelete, "/v1/webhooks/"+created.ID, a.admin, ""); status/100 != 2 {
				t.Fatalf("%s: delete %s: %d %s", a.name, created.ID, status, res)
			}
		}
	})
}

// publishBody splices id, as written, into a publishEvent body.
func publishBody(data, id string) string {
	return `{"type":"order.created","data":` + data + `,"id":"` + id + `"}`
}

func FuzzPublishEverywhere(f *testing.F) {
	for _, s := range [][3]string{
		{`{}`, "k1", "k2"},
		{`{}`, "k1", "k1"},
		{`{}`, `k\u0031`, "k1"},
		{`{}`, "k\xff", "k\xfe"},
		{`{}`, "k\xc3\x28", "k\xc3\x29"},
		{`{}`, `k\ud800`, `k\udc00`},
		{`{}`, `\u0000`, `k\u0000`},
		{`{"a":1,"a":2}`, "k3", "k4"},
		{`{"note":"\u0000"}`, "k5", "k6"},
		{"{\"note\":\"\xff\"}", "k7", "k8"},
		{`{}},"id":"x"} xx`, "k9", "k10"},
		{`{}`, `k","audience":{"user_ids":["\u0000"]}`, `k","audience":{"user_ids":["alice"]}`},
		{`{}`, `k","id":"dup`, "k11"},
		{`{}`, `k\ufffd`, "k\xef\xbf\xbd"},
	} {
		f.Add(s[0], s[1], s[2])
	}
	apis := fuzzAPIs(f)
	f.Fuzz(func(t *testing.T, data, id1, id2 string) {
		for _, a := range apis {
			b1, b2 := publishBody(data, id1), publishBody(data, id2)
			s1, r1 := a.do(t, http.MethodPost, "/v1/events", a.producer, b1)
			s2, r2 := a.do(t, http.MethodPost, "/v1/events", a.producer, b2)
			for _, r := range []struct {
				status int
				body   string
			}{{s1, b1}, {s2, b2}} {
				if r.status/100 == 2 && !utf8.ValidString(r.body) {
					t.Fatalf("%s: %q is not UTF-8, so it cannot be stored as sent, yet it answered %d", a.name, r.body, r.status)
				}
			}
			if s1/100 != 2 || s2/100 != 2 {
				continue
			}
			// Both accepted: the same producer id is the same event, and a
			// different one is a different event.
			var sent1, sent2 struct {
				ID string `json:"id"`
			}
			var got1, got2 struct {
				ID string `json:"id"`
			}
			if json.Unmarshal([]byte(b1), &sent1) != nil || json.Unmarshal([]byte(b2), &sent2) != nil ||
				json.Unmarshal(r1, &got1) != nil || json.Unmarshal(r2, &got2) != nil {
				t.Fatalf("%s: %q -> %s, %q -> %s", a.name, b1, r1, b2, r2)
			}
			if (sent1.ID == sent2.ID) != (got1.ID == got2.ID) {
				t.Fatalf("%s: producer ids %q and %q gave events %s and %s", a.name, sent1.ID, sent2.ID, got1.ID, got2.ID)
			}
		}
	})
}

// FuzzWebhookPathEverywhere sends arbitrary ids, cursors and statuses to the
// per-webhook operations: never a 5xx, and no id but a registered one is found.
func FuzzWebhookPathEverywhere(f *testing.F) {
	for _, s := range [][3]string{
		{"wh_1", "", ""},
		{"\x00", "\x00", "\x00"},
		{"\xff", "\xff", "\xff"},
		{"\xc3\x28", "\xc3\x28", "PENDING"},
		{"wh_\x00", "x", "DELIVERED"},
		{"%00", "%ff", "%c3%28"},
		{"..", "", ""},
		{"a/b", "", ""},
	} {
		f.Add(s[0], s[1], s[2])
	}
	apis := fuzzAPIs(f)
	f.Fuzz(func(t *testing.T, id, cursor, status string) {
		for _, a := range apis {
			p := "/v1/webhooks/" + url.PathEscape(id)
			q := "?cursor=" + url.QueryEscape(cursor) + "&status=" + url.QueryEscape(status)
			for _, op := range []struct{ method, path string }{
				{http.MethodGet, p},
				{http.MethodPost, p + "/pause"},
				{http.MethodPost, p + "/unpause"},
				{http.MethodGet, p + "/deliveries" + q},
				{http.MethodPost, p + "/deliveries/" + url.PathEscape(cursor) + "/redeliver"},
				{http.MethodPost, p + "/ping"},
				{http.MethodPost, p + "/rotate-secret"},
				{http.MethodPatch, p},
				{http.MethodDelete, p},
				{http.MethodGet, "/v1/webhooks" + q},
			} {
				code, res := a.do(t, op.method, op.path, a.admin, "")
				if code/100 == 2 && op.path != "/v1/webhooks"+q {
					t.Fatalf("%s: %s %s found something: %d %s", a.name, op.method, op.path, code, res)
				}
			}
		}
	})
}

// FuzzRotateSecretEverywhere sends arbitrary bodies to rotateWebhookSecret:
// never a 5xx; a 200 only for a ttl within [0, 604800] (or none: a day),
// and then previous_secret_expires_at says exactly that ttl.
func FuzzRotateSecretEverywhere(f *testing.F) {
	for _, s := range []string{
		``, `{}`, `{"previous_secret_ttl_seconds":0}`, `{"previous_secret_ttl_seconds":604800}`,
		`{"previous_secret_ttl_seconds":604801}`, `{"previous_secret_ttl_seconds":-1}`,
		`{"previous_secret_ttl_seconds":1e3}`, `{"previous_secret_ttl_seconds":9223372036854775808}`,
		`{"previous_secret_ttl_seconds":60,"previous_secret_ttl_seconds":0}`, `{"previous_secret_ttl_seconds":60} x`,
		"{\"previous_secret_ttl_seconds\":\"\xff\"}", `null`, `[]`,
	} {
		f.Add(s)
	}
	apis := fuzzAPIs(f)
	ids := fuzzWebhooks(f, apis, "https://example.com/rotating")
	f.Fuzz(func(t *testing.T, body string) {
		for i, a := range apis {
			before := time.Now()
			status, res := a.do(t, http.MethodPost, "/v1/webhooks/"+ids[i]+"/rotate-secret", a.admin, body)
			if status == http.StatusBadRequest {
				continue
			}
			if status != http.StatusOK {
				t.Fatalf("%s: %q: %d %s", a.name, body, status, res)
			}
			var sent struct {
				TTL *int64 `json:"previous_secret_ttl_seconds"`
			}
			if body != "" {
				if err := json.Unmarshal([]byte(body), &sent); err != nil {
					t.Fatalf("%s: %q does not parse, yet it answered 200", a.name, body)
				}
			}
			ttl := int64(86400)
			if sent.TTL != nil {
				ttl = *sent.TTL
			}
			if ttl < 0 || ttl > 604800 {
				t.Fatalf("%s: ttl %d accepted", a.name, ttl)
			}
			var got struct {
				Expires *time.Time `json:"previous_secret_expires_at"`
			}
			if err := json.Unmarshal(res, &got); err != nil {
				t.Fatal(err)
			}
			// Earlier rotations of this webhook may still overlap: the
			// expiry is at least this one's.
			if ttl > 0 && (got.Expires == nil || got.Expires.Before(before.Add(time.Duration(ttl)*time.Second-time.Second))) {
				t.Fatalf("%s: %q: previous_secret_expires_at %v, want ≥ now+%ds", a.name, body, got.Expires, ttl)
			}
		}
	})
}

// FuzzPublishEventsEverywhere sends arbitrary batch bodies: never a 5xx; a
// refused batch queues nothing; an accepted one answers one event per event
// sent, the same event for the same producer id and another for another.
func FuzzPublishEventsEverywhere(f *testing.F) {
	for _, s := range []string{
		`{"events":[{"type":"order.created","data":{}}]}`,
		`{"events":[{"type":"order.created","data":{},"id":"k1"},{"type":"order.created","data":{},"id":"k1"},{"type":"order.created","data":{},"id":"k2"}]}`,
		`{"events":[{"type":"order.created","data":{},"id":"k1"},{"type":"order.exploded","data":{}}]}`,
		`{"events":[{"type":"order.created","data":{},"id":"k3"},{"type":"order.created"}]}`,
		`{"events":[{"type":"order.created","data":{},"id":"k\u0031"},{"type":"order.created","data":{},"id":"k1"}]}`,
		`{"events":[{"type":"order.created","data":{},"id":"k\ud800"}]}`,
		"{\"events\":[{\"type\":\"order.created\",\"data\":{},\"id\":\"k\xff\"}]}",
		`{"events":[{"type":"order.created","data":{"a":1,"a":2}}]}`,
		`{"events":[{"type":"order.created","data":{},"audience":{"user_ids":["alice"]}},{"type":"order.created","data":{},"audience":{"user_ids":[]}}]}`,
		`{"events":[]}`, `{"events":null}`, `{"events":[null]}`, `{"events":[{}]}`, `{"events":[[]]}`, `{"events":"x"}`,
		`{"events":[{"type":"order.created","data":{}}],"events":[]}`, `{"events":[{"type":"order.created","data":{}}]} x`,
		`[]`, `null`, ``,
	} {
		f.Add(s)
	}
	apis := fuzzAPIs(f)
	hooks := fuzzWebhooks(f, apis, "https://example.com/batch")
	buffered := func(t *testing.T, a fuzzAPI, id string) int64 {
		status, res := a.do(t, http.MethodGet, "/v1/webhooks/"+id, a.admin, "")
		var w struct {
			Buffered int64 `json:"buffered_events"`
		}
		if status != http.StatusOK || json.Unmarshal(res, &w) != nil {
			t.Fatalf("%s: get webhook: %d %s", a.name, status, res)
		}
		return w.Buffered
	}
	f.Fuzz(func(t *testing.T, body string) {
		for i, a := range apis {
			before := buffered(t, a, hooks[i])
			status, res := a.do(t, http.MethodPost, "/v1/events/batch", a.producer, body)
			after := buffered(t, a, hooks[i])
			if status != http.StatusAccepted {
				var e struct {
					Code string `json:"code"`
				}
				if (status != http.StatusBadRequest && status != http.StatusRequestEntityTooLarge) || json.Unmarshal(res, &e) != nil || e.Code == "" {
					t.Fatalf("%s: %q: %d %s", a.name, body, status, res)
				}
				if after != before {
					t.Fatalf("%s: %q was refused (%d %s), yet it queued %d deliveries", a.name, body, status, res, after-before)
				}
				continue
			}
			if !utf8.ValidString(body) {
				t.Fatalf("%s: %q is not UTF-8, so it cannot be stored as sent, yet it answered %d", a.name, body, status)
			}
			var sent struct {
				Events []struct {
					ID *string `json:"id"`
				} `json:"events"`
			}
			var got struct {
				Events []struct {
					ID         string `json:"id"`
					Deliveries int64  `json:"deliveries"`
				} `json:"events"`
			}
			if json.Unmarshal([]byte(body), &sent) != nil || json.Unmarshal(res, &got) != nil || len(got.Events) != len(sent.Events) {
				t.Fatalf("%s: %q -> %s", a.name, body, res)
			}
			for j := range sent.Events {
				for k := range j {
					sj, sk := sent.Events[j].ID, sent.Events[k].ID
					same := sj != nil && sk != nil && *sj == *sk
					if same != (got.Events[j].ID == got.Events[k].ID) {
						t.Fatalf("%s: %q: events %d and %d (producer ids %v, %v) answered %s and %s", a.name, body, k, j, sj, sk, got.Events[k].ID, got.Events[j].ID)
					}
				}
			}
		}
	})
}
