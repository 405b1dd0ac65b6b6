package server_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookferry/hookferry/auth"
	hookferry "github.com/hookferry/hookferry/clients/go"
	"github.com/hookferry/hookferry/server"
	"github.com/hookferry/hookferry/store/storetest"
	"github.com/hookferry/hookferry/webhook"
	"github.com/stretchr/testify/require"
)

var ctx = context.Background()

func TestRegisterWebhook(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, be storetest.Backend) {
		e := setup(t, be)
		res, err := e.alice.RegisterWebhookWithResponse(ctx, registerBody("https://example.com/hooks", "order.created", "payment.failed"))
		require.NoError(t, err)
		require.Equal(t, http.StatusCreated, res.StatusCode(), "%s", res.Body)
		w := res.JSON201
		require.True(t, strings.HasPrefix(w.Id, "wh_"), w.Id)
		require.Equal(t, "/v1/webhooks/"+w.Id, res.HTTPResponse.Header.Get("Location"))
		require.Equal(t, "https://example.com/hooks", w.Url)
		require.Equal(t, []string{"order.created", "payment.failed"}, w.Subscription.EventTypes)
		sorted := e.register(e.alice, "https://example.com/sorted", "payment.failed", "invoice.paid")
		require.Equal(t, []string{"invoice.paid", "payment.failed"}, sorted.Subscription.EventTypes, "event types are listed sorted, in every answer")
		require.Equal(t, hookferry.WebhookStatusACTIVE, w.Status)
		require.Nil(t, w.PauseReason)
		require.Nil(t, w.PausedAt)
		require.Zero(t, w.BufferedEvents)
		require.True(t, w.CreatedAt.Equal(e.clock.Now()), "created_at %s", w.CreatedAt)
		require.True(t, w.UpdatedAt.Equal(e.clock.Now()))
		require.NotNil(t, w.Authentication)
		require.Equal(t, hookferry.AuthenticationSchemeSTANDARDWEBHOOKS, w.Authentication.Scheme)
		require.True(t, strings.HasPrefix(w.Authentication.Secret, "whsec_"))
		key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(w.Authentication.Secret, "whsec_"))
		require.NoError(t, err)
		require.Len(t, key, 32)

		got, err := e.alice.GetWebhookWithResponse(ctx, w.Id, nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, got.StatusCode())
		require.Equal(t, w.Id, got.JSON200.Id)
		require.Equal(t, w.Subscription, got.JSON200.Subscription)
		require.Nil(t, got.JSON200.Authentication, "no secret without show_authentication")

		// Two webhooks never share a secret.
		other := e.register(e.alice, "https://example.com/other")
		require.NotEqual(t, w.Authentication.Secret, other.Authentication.Secret)
	})
}

func TestRegisterWebhookRejectsBadInput(t *testing.T) {
	t.Parallel()
	long := "https://example.com/" + strings.Repeat("a", 2049-len("https://example.com/"))
	many := make([]string, 101)
	for i := range many {
		many[i] = fmt.Sprintf("%q", fmt.Sprintf("t%d", i))
	}
	cases := []struct {
		name, body string
		code       hookferry.ErrorCode
		mention    string // the message must name this
	}{
		{"http scheme", `{"url":"http://example.com/h","subscription":{"event_types":["order.created"]}}`, hookferry.ErrorCodeINVALIDURLISNOTUSINGHTTPS, "https"},
		{"ftp scheme", `{"url":"ftp://example.com/h","subscription":{"event_types":["order.created"]}}`, hookferry.ErrorCodeINVALIDURLISNOTUSINGHTTPS, "https"},
		{"relative", `{"url":"/hooks","subscription":{"event_types":["order.created"]}}`, hookferry.ErrorCodeINVALIDURL, "absolute"},
		{"no host", `{"url":"https:///hooks","subscription":{"event_types":["order.created"]}}`, hookferry.ErrorCodeINVALIDURL, "host"},
		{"unparsable", `{"url":"https://exa mple.com/%zz","subscription":{"event_types":["order.created"]}}`, hookferry.ErrorCodeINVALIDURL, "url"},
		{"user info", `{"url":"https://u:p@example.com/h","subscription":{"event_types":["order.created"]}}`, hookferry.ErrorCodeINVALIDURL, "user"},
		{"fragment", `{"url":"https://example.com/h#x","subscription":{"event_types":["order.created"]}}`, hookferry.ErrorCodeINVALIDURL, "fragment"},
		{"too long", `{"url":"` + long + `","subscription":{"event_types":["order.created"]}}`, hookferry.ErrorCodeINVALIDURL, "2048"},
		{"loopback", `{"url":"https://127.0.0.1/h","subscription":{"event_types":["order.created"]}}`, hookferry.ErrorCodeINVALIDURL, "127.0.0.1"},
		{"private", `{"url":"https://10.1.2.3/h","subscription":{"event_types":["order.created"]}}`, hookferry.ErrorCodeINVALIDURL, "10.1.2.3"},
		{"link-local", `{"url":"https://169.254.169.254/latest","subscription":{"event_types":["order.created"]}}`, hookferry.ErrorCodeINVALIDURL, "169.254.169.254"},
		{"unspecified", `{"url":"https://0.0.0.0/h","subscription":{"event_types":["order.created"]}}`, hookferry.ErrorCodeINVALIDURL, "0.0.0.0"},
		{"ipv6 loopback", `{"url":"https://[::1]:8443/h","subscription":{"event_types":["order.created"]}}`, hookferry.ErrorCodeINVALIDURL, "::1"},
		{"localhost", `{"url":"https://localhost/h","subscription":{"event_types":["order.created"]}}`, hookferry.ErrorCodeINVALIDURL, "localhost"},
		{"url missing", `{"subscription":{"event_types":["order.created"]}}`, hookferry.ErrorCodeINVALIDURL, "url"},
		{"url not a string", `{"url":42,"subscription":{"event_types":["order.created"]}}`, hookferry.ErrorCodeINVALIDURL, "url"},
		{"url empty", `{"url":"","subscription":{"event_types":["order.created"]}}`, hookferry.ErrorCodeINVALIDURL, "url"},
		{"no event types", `{"url":"https://example.com/h","subscription":{"event_types":[]}}`, hookferry.ErrorCodeINVALIDSUBSCRIPTION, "event_types"},
		{"duplicate event type", `{"url":"https://example.com/h","subscription":{"event_types":["order.created","order.created"]}}`, hookferry.ErrorCodeINVALIDSUBSCRIPTION, "order.created"},
		{"unknown event type", `{"url":"https://example.com/h","subscription":{"event_types":["order.created","order.exploded"]}}`, hookferry.ErrorCodeINVALIDSUBSCRIPTION, "order.exploded"},
		{"malformed event type", `{"url":"https://example.com/h","subscription":{"event_types":["no spaces"]}}`, hookferry.ErrorCodeINVALIDSUBSCRIPTION, "event_types[0]"},
		{"over-long event type", `{"url":"https://example.com/h","subscription":{"event_types":["` + strings.Repeat("a", 129) + `"]}}`, hookferry.ErrorCodeINVALIDSUBSCRIPTION, "event_types[0]"},
		{"too many event types", `{"url":"https://example.com/h","subscription":{"event_types":[` + strings.Join(many, ",") + `]}}`, hookferry.ErrorCodeINVALIDSUBSCRIPTION, "event_types"},
		{"event type not a string", `{"url":"https://example.com/h","subscription":{"event_types":[7]}}`, hookferry.ErrorCodeINVALIDSUBSCRIPTION, "event_types[0]"},
		{"subscription missing", `{"url":"https://example.com/h"}`, hookferry.ErrorCodeINVALIDSUBSCRIPTION, "subscription"},
		{"subscription extra field", `{"url":"https://example.com/h","subscription":{"event_types":["order.created"],"filter":1}}`, hookferry.ErrorCodeINVALIDSUBSCRIPTION, "filter"},
		{"unknown field", `{"url":"https://example.com/h","subscription":{"event_types":["order.created"]},"colour":"red"}`, hookferry.ErrorCodeINVALIDREQUEST, "colour"},
		{"malformed JSON", `{"url":`, hookferry.ErrorCodeINVALIDREQUEST, "body"},
		{"not an object", `["https://example.com"]`, hookferry.ErrorCodeINVALIDREQUEST, "body"},
		{"empty body", ``, hookferry.ErrorCodeINVALIDREQUEST, "body"},
		{"ordered not a boolean", `{"url":"https://example.com/h","subscription":{"event_types":["order.created"]},"ordered":"yes"}`, hookferry.ErrorCodeINVALIDREQUEST, "ordered"},
		{"ordered a number", `{"url":"https://example.com/h","subscription":{"event_types":["order.created"]},"ordered":1}`, hookferry.ErrorCodeINVALIDREQUEST, "ordered"},
		{"ordered null", `{"url":"https://example.com/h","subscription":{"event_types":["order.created"]},"ordered":null}`, hookferry.ErrorCodeINVALIDREQUEST, "ordered"},
		{"url beats the rest", `{"url":"http://example.com","subscription":{"event_types":[]},"x":1}`, hookferry.ErrorCodeINVALIDURLISNOTUSINGHTTPS, "https"},
	}
	eachBackend(t, func(t *testing.T, be storetest.Backend) {
		e := setup(t, be)
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				res, err := e.alice.RegisterWebhookWithBodyWithResponse(ctx, "application/json", strings.NewReader(tc.body))
				require.NoError(t, err)
				msg := requireError(t, res, res.Body, http.StatusBadRequest, tc.code)
				require.Contains(t, msg, tc.mention)
			})
		}
		t.Run("wrong content type", func(t *testing.T) {
			res, err := e.alice.RegisterWebhookWithBodyWithResponse(ctx, "text/plain", strings.NewReader(`{"url":"https://example.com/h","subscription":{"event_types":["order.created"]}}`))
			require.NoError(t, err)
			requireError(t, res, res.Body, http.StatusBadRequest, hookferry.ErrorCodeINVALIDREQUEST)
		})
		list, err := e.alice.ListWebhooksWithResponse(ctx, nil)
		require.NoError(t, err)
		require.Empty(t, list.JSON200.Items, "a rejected registration stored something")
	})
}

func TestRegisterWebhookBodyTooLarge(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, be storetest.Backend) {
		e := setup(t, be, func(c *server.Config) { c.MaxBodyBytes = 4096 })
		body := `{"url":"https://example.com/` + strings.Repeat("a", 5000) + `","subscription":{"event_types":["order.created"]}}`
		res, err := e.alice.RegisterWebhookWithBodyWithResponse(ctx, "application/json", strings.NewReader(body))
		require.NoError(t, err)
		requireError(t, res, res.Body, http.StatusRequestEntityTooLarge, hookferry.ErrorCodePAYLOADTOOLARGE)

		// Without a Content-Length the limit holds while reading.
		res, err = e.alice.RegisterWebhookWithBodyWithResponse(ctx, "application/json", struct{ *strings.Reader }{strings.NewReader(body)})
		require.NoError(t, err)
		requireError(t, res, res.Body, http.StatusRequestEntityTooLarge, hookferry.ErrorCodePAYLOADTOOLARGE)
	})
}

func TestPrivateTargetsWhenAllowed(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, be storetest.Backend) {
		e := setup(t, be, func(c *server.Config) { c.AllowPrivateTargets = true })
		for _, u := range []string{"https://127.0.0.1:8443/h", "https://localhost/h", "https://10.0.0.7/h", "https://[::1]/h"} {
			e.register(e.alice, u)
		}
		res, err := e.alice.RegisterWebhookWithResponse(ctx, registerBody("http://localhost/h"))
		require.NoError(t, err)
		requireError(t, res, res.Body, http.StatusBadRequest, hookferry.ErrorCodeINVALIDURLISNOTUSINGHTTPS)
	})
}

func TestDuplicateURL(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, be storetest.Backend) {
		e := setup(t, be)
		w := e.register(e.alice, "https://example.com/hooks")
		for _, spelling := range []string{"https://example.com/hooks", "HTTPS://EXAMPLE.com/hooks", "https://example.com:443/hooks", "https://example.com./hooks"} {
			res, err := e.alice.RegisterWebhookWithResponse(ctx, registerBody(spelling, "payment.failed"))
			require.NoError(t, err)
			requireError(t, res, res.Body, http.StatusConflict, hookferry.ErrorCodeDUPLICATEURL)
		}
		// The path is case-sensitive and another port is another URL.
		e.register(e.alice, "https://example.com/HOOKS")
		e.register(e.alice, "https://example.com:8443/hooks")
		// Another user may register the same URL.
		bob := e.client(e.token("acme", "bob", auth.PermissionWebhookManagement))
		e.register(bob, "https://example.com/hooks")
		// Once deleted, the URL is free again.
		del, err := e.alice.DeleteWebhookWithResponse(ctx, w.Id)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, del.StatusCode())
		e.register(e.alice, "https://example.com/hooks")
	})
}

func TestWebhookLimit(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, be storetest.Backend) {
		e := setup(t, be, func(c *server.Config) { c.MaxWebhooksPerUser = 3 })
		var ids []string
		for i := range 3 {
			ids = append(ids, e.register(e.alice, fmt.Sprintf("https://example.com/%d", i)).Id)
		}
		res, err := e.alice.RegisterWebhookWithResponse(ctx, registerBody("https://example.com/3"))
		require.NoError(t, err)
		msg := requireError(t, res, res.Body, http.StatusConflict, hookferry.ErrorCodeTOOMANYWEBHOOKSREGISTERED)
		require.Contains(t, msg, "3")
		// The limit is per user.
		bob := e.client(e.token("acme", "bob", auth.PermissionWebhookManagement))
		e.register(bob, "https://example.com/3")
		// A deletion makes room.
		_, err = e.alice.DeleteWebhookWithResponse(ctx, ids[0])
		require.NoError(t, err)
		e.register(e.alice, "https://example.com/3")
	})
}

func TestConcurrentRegistrations(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, be storetest.Backend) {
		e := setup(t, be, func(c *server.Config) { c.MaxWebhooksPerUser = 10 })
		count := func(url func(i int) string) map[int]int {
			statuses := map[int]int{}
			var mu sync.Mutex
			var wg sync.WaitGroup
			for i := range 50 {
				wg.Go(func() {
					res, err := e.alice.RegisterWebhookWithResponse(ctx, registerBody(url(i)))
					require.NoError(t, err)
					mu.Lock()
					defer mu.Unlock()
					statuses[res.StatusCode()]++
					if res.StatusCode() == http.StatusConflict {
						require.Contains(t, []hookferry.ErrorCode{hookferry.ErrorCodeDUPLICATEURL, hookferry.ErrorCodeTOOMANYWEBHOOKSREGISTERED}, res.JSON409.Code)
					}
				})
			}
			wg.Wait()
			return statuses
		}
		same := count(func(int) string { return "https://example.com/same" })
		require.Equal(t, map[int]int{http.StatusCreated: 1, http.StatusConflict: 49}, same)

		distinct := count(func(i int) string { return fmt.Sprintf("https://example.com/%d", i) })
		require.Equal(t, map[int]int{http.StatusCreated: 9, http.StatusConflict: 41}, distinct)

		list, err := e.alice.ListWebhooksWithResponse(ctx, nil)
		require.NoError(t, err)
		require.Len(t, list.JSON200.Items, 10)
	})
}

// TestOrderedWebhook: ordered is false unless registration asks for it, and
// every answer shows it.
func TestOrderedWebhook(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, be storetest.Backend) {
		e := setup(t, be)
		want := map[string]bool{}
		var orderedID string
		for i, tc := range []struct {
			name    string
			ordered *bool
			want    bool
		}{{"absent", nil, false}, {"false", ptr(false), false}, {"true", ptr(true), true}} {
			body := registerBody(fmt.Sprintf("https://example.com/%d", i))
			body.Ordered = tc.ordered
			res, err := e.alice.RegisterWebhookWithResponse(ctx, body)
			require.NoError(t, err)
			require.Equal(t, http.StatusCreated, res.StatusCode(), "%s: %s", tc.name, res.Body)
			require.Equal(t, tc.want, res.JSON201.Ordered, tc.name)
			require.Contains(t, string(res.Body), fmt.Sprintf(`"ordered":%t`, tc.want), "%s: present in the answer, false included", tc.name)
			get, err := e.alice.GetWebhookWithResponse(ctx, res.JSON201.Id, nil)
			require.NoError(t, err)
			require.Equal(t, tc.want, get.JSON200.Ordered, "%s: stored", tc.name)
			require.Contains(t, string(get.Body), fmt.Sprintf(`"ordered":%t`, tc.want))
			want[res.JSON201.Id] = tc.want
			if tc.want {
				orderedID = res.JSON201.Id
			}
		}
		list, err := e.alice.ListWebhooksWithResponse(ctx, nil)
		require.NoError(t, err)
		require.Len(t, list.JSON200.Items, len(want))
		for _, w := range list.JSON200.Items {
			require.Equal(t, want[w.Id], w.Ordered, w.Id)
		}

		// Pausing, unpausing and deleting keep it.
		pause, err := e.alice.PauseWebhookWithResponse(ctx, orderedID)
		require.NoError(t, err)
		require.True(t, pause.JSON200.Ordered)
		unpause, err := e.alice.UnpauseWebhookWithResponse(ctx, orderedID, nil)
		require.NoError(t, err)
		require.True(t, unpause.JSON200.Ordered)
		del, err := e.alice.DeleteWebhookWithResponse(ctx, orderedID)
		require.NoError(t, err)
		require.True(t, del.JSON200.Ordered)
	})
}

// TestEndpointGone: a webhook the delivery engine paused after a 410 reads
// ENDPOINT_GONE until a user unpauses it; a user's pause does not overwrite it.
func TestEndpointGone(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, be storetest.Backend) {
		e := setup(t, be)
		w := e.register(e.alice, "https://example.com/gone")
		_, err := e.store.PauseWebhook(ctx, webhook.Owner{TenantID: "acme", UserID: "alice"}, w.Id, webhook.PauseReasonEndpointGone)
		require.NoError(t, err)

		get, err := e.alice.GetWebhookWithResponse(ctx, w.Id, nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, get.StatusCode(), "%s", get.Body)
		require.Equal(t, hookferry.WebhookStatusPAUSED, get.JSON200.Status)
		require.Equal(t, hookferry.PauseReasonENDPOINTGONE, *get.JSON200.PauseReason)
		list, err := e.alice.ListWebhooksWithResponse(ctx, nil)
		require.NoError(t, err)
		require.Equal(t, hookferry.PauseReasonENDPOINTGONE, *list.JSON200.Items[0].PauseReason)
		pause, err := e.alice.PauseWebhookWithResponse(ctx, w.Id)
		require.NoError(t, err)
		require.Equal(t, hookferry.PauseReasonENDPOINTGONE, *pause.JSON200.PauseReason, "pausing a paused webhook changes nothing")

		un, err := e.alice.UnpauseWebhookWithResponse(ctx, w.Id, nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, un.StatusCode(), "%s", un.Body)
		require.Equal(t, hookferry.WebhookStatusACTIVE, un.JSON200.Status)
		require.Nil(t, un.JSON200.PauseReason)
	})
}

func TestListWebhooks(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, be storetest.Backend) {
		e := setup(t, be)
		list, err := e.alice.ListWebhooksWithResponse(ctx, nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, list.StatusCode())
		require.NotNil(t, list.JSON200.Items, "an empty list is [], not null")
		require.Empty(t, list.JSON200.Items)
		require.Contains(t, string(list.Body), `"items":[]`)

		var registered []hookferry.Webhook
		for i := range 6 {
			if i%2 == 0 {
				e.clock.Advance(time.Second) // some share a creation time, some do not
			}
			registered = append(registered, e.register(e.alice, fmt.Sprintf("https://example.com/%d", i), "order.created", "invoice.paid"))
		}
		for _, show := range []*bool{nil, ptr(false), ptr(true)} {
			list, err := e.alice.ListWebhooksWithResponse(ctx, &hookferry.ListWebhooksParams{ShowAuthentication: show})
			require.NoError(t, err)
			require.Len(t, list.JSON200.Items, len(registered))
			require.Nil(t, list.JSON200.NextCursor)
			for i, w := range list.JSON200.Items {
				require.Equal(t, registered[i].Id, w.Id, "creation order")
				require.Equal(t, []string{"invoice.paid", "order.created"}, w.Subscription.EventTypes)
				if show != nil && *show {
					require.Equal(t, registered[i].Authentication, w.Authentication)
				} else {
					require.Nil(t, w.Authentication)
				}
			}
		}
	})
}

func TestShowAuthentication(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, be storetest.Backend) {
		e := setup(t, be)
		w := e.register(e.alice, "https://example.com/h")

		get, err := e.alice.GetWebhookWithResponse(ctx, w.Id, &hookferry.GetWebhookParams{ShowAuthentication: ptr(true)})
		require.NoError(t, err)
		require.Equal(t, w.Authentication, get.JSON200.Authentication)
		get, err = e.alice.GetWebhookWithResponse(ctx, w.Id, &hookferry.GetWebhookParams{ShowAuthentication: ptr(false)})
		require.NoError(t, err)
		require.Nil(t, get.JSON200.Authentication)
		require.NotContains(t, string(get.Body), "whsec_")

		pause, err := e.alice.PauseWebhookWithResponse(ctx, w.Id)
		require.NoError(t, err)
		require.NotContains(t, string(pause.Body), "whsec_")
		unpause, err := e.alice.UnpauseWebhookWithResponse(ctx, w.Id, &hookferry.UnpauseWebhookParams{ShowAuthentication: ptr(true)})
		require.NoError(t, err)
		require.Equal(t, w.Authentication, unpause.JSON200.Authentication)
		del, err := e.alice.DeleteWebhookWithResponse(ctx, w.Id)
		require.NoError(t, err)
		require.NotContains(t, string(del.Body), "whsec_")

		bad, err := e.alice.GetWebhookWithResponse(ctx, w.Id, nil, func(_ context.Context, req *http.Request) error {
			req.URL.RawQuery = "show_authentication=yes"
			return nil
		})
		require.NoError(t, err)
		requireError(t, bad, bad.Body, http.StatusBadRequest, hookferry.ErrorCodeINVALIDREQUEST)
	})
}

func TestDeleteWebhook(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, be storetest.Backend) {
		e := setup(t, be)
		w := e.register(e.alice, "https://example.com/h")
		keep := e.register(e.alice, "https://example.com/keep")
		_, err := e.alice.PauseWebhookWithResponse(ctx, w.Id)
		require.NoError(t, err)

		del, err := e.alice.DeleteWebhookWithResponse(ctx, w.Id)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, del.StatusCode())
		require.Equal(t, w.Id, del.JSON200.Id)
		require.Equal(t, hookferry.WebhookStatusPAUSED, del.JSON200.Status, "as it was")
		require.Nil(t, del.JSON200.Authentication)

		requireNotFound(t, e.alice, w.Id)
		list, err := e.alice.ListWebhooksWithResponse(ctx, nil)
		require.NoError(t, err)
		require.Len(t, list.JSON200.Items, 1)
		require.Equal(t, keep.Id, list.JSON200.Items[0].Id)
	})
}

// requireNotFound checks that every operation on id answers 404 WEBHOOK_NOT_FOUND.
func requireNotFound(t *testing.T, c *hookferry.ClientWithResponses, id string) {
	t.Helper()
	get, err := c.GetWebhookWithResponse(ctx, id, &hookferry.GetWebhookParams{ShowAuthentication: ptr(true)})
	require.NoError(t, err)
	requireError(t, get, get.Body, http.StatusNotFound, hookferry.ErrorCodeWEBHOOKNOTFOUND)
	pause, err := c.PauseWebhookWithResponse(ctx, id)
	require.NoError(t, err)
	requireError(t, pause, pause.Body, http.StatusNotFound, hookferry.ErrorCodeWEBHOOKNOTFOUND)
	unpause, err := c.UnpauseWebhookWithResponse(ctx, id, nil)
	require.NoError(t, err)
	requireError(t, unpause, unpause.Body, http.StatusNotFound, hookferry.ErrorCodeWEBHOOKNOTFOUND)
	upd, err := c.UpdateWebhookWithResponse(ctx, id, hookferry.UpdateWebhookJSONRequestBody{Ordered: ptr(true)})
	require.NoError(t, err)
	requireError(t, upd, upd.Body, http.StatusNotFound, hookferry.ErrorCodeWEBHOOKNOTFOUND)
	del, err := c.DeleteWebhookWithResponse(ctx, id)
	require.NoError(t, err)
	requireError(t, del, del.Body, http.StatusNotFound, hookferry.ErrorCodeWEBHOOKNOTFOUND)
}

func TestUnknownAndMalformedIDs(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, be storetest.Backend) {
		e := setup(t, be)
		e.register(e.alice, "https://example.com/h")
		for _, id := range []string{"wh_00000000000000000000000000", "nope", "' OR 1=1 --", strings.Repeat("x", 5000), "%", "wh_ü"} {
			requireNotFound(t, e.alice, id)
		}
	})
}

func TestPauseAndUnpause(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, be storetest.Backend) {
		e := setup(t, be, func(c *server.Config) { c.UnpauseCooldown = 10 * time.Second })
		w := e.register(e.alice, "https://example.com/h")

		// Unpausing an active webhook is a no-op, whatever the cooldown.
		for range 2 {
			un, err := e.alice.UnpauseWebhookWithResponse(ctx, w.Id, nil)
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, un.StatusCode(), "%s", un.Body)
			require.Equal(t, hookferry.WebhookStatusACTIVE, un.JSON200.Status)
			require.True(t, un.JSON200.UpdatedAt.Equal(w.UpdatedAt), "no-op changes nothing")
		}

		e.clock.Advance(time.Minute)
		pausedAt := e.clock.Now()
		pause, err := e.alice.PauseWebhookWithResponse(ctx, w.Id)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, pause.StatusCode())
		require.Equal(t, hookferry.WebhookStatusPAUSED, pause.JSON200.Status)
		require.Equal(t, hookferry.PauseReasonUSER, *pause.JSON200.PauseReason)
		require.True(t, pause.JSON200.PausedAt.Equal(pausedAt))

		// Pausing again is idempotent: paused_at stays.
		e.clock.Advance(time.Minute)
		again, err := e.alice.PauseWebhookWithResponse(ctx, w.Id)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, again.StatusCode())
		require.True(t, again.JSON200.PausedAt.Equal(pausedAt))
		get, err := e.alice.GetWebhookWithResponse(ctx, w.Id, nil)
		require.NoError(t, err)
		require.Equal(t, hookferry.WebhookStatusPAUSED, get.JSON200.Status)

		un, err := e.alice.UnpauseWebhookWithResponse(ctx, w.Id, nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, un.StatusCode())
		require.Equal(t, hookferry.WebhookStatusACTIVE, un.JSON200.Status)
		require.Nil(t, un.JSON200.PauseReason)
		require.Nil(t, un.JSON200.PausedAt)
		require.NotContains(t, string(un.Body), "paused_at")

		// A second effective unpause within the cooldown: 429 with Retry-After.
		e.clock.Advance(3500 * time.Millisecond)
		_, err = e.alice.PauseWebhookWithResponse(ctx, w.Id)
		require.NoError(t, err)
		tooSoon, err := e.alice.UnpauseWebhookWithResponse(ctx, w.Id, nil)
		require.NoError(t, err)
		requireError(t, tooSoon, tooSoon.Body, http.StatusTooManyRequests, hookferry.ErrorCodeTOOMANYREQUESTS)
		require.Equal(t, "7", tooSoon.HTTPResponse.Header.Get("Retry-After"), "6.5 s left, rounded up")
		get, err = e.alice.GetWebhookWithResponse(ctx, w.Id, nil)
		require.NoError(t, err)
		require.Equal(t, hookferry.WebhookStatusPAUSED, get.JSON200.Status, "a refused unpause leaves it paused")

		e.clock.Advance(6 * time.Second)
		tooSoon, err = e.alice.UnpauseWebhookWithResponse(ctx, w.Id, nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusTooManyRequests, tooSoon.StatusCode())
		require.Equal(t, "1", tooSoon.HTTPResponse.Header.Get("Retry-After"), "0.5 s left is 1 s")

		e.clock.Advance(500 * time.Millisecond)
		un, err = e.alice.UnpauseWebhookWithResponse(ctx, w.Id, nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, un.StatusCode(), "%s", un.Body)
		require.Equal(t, hookferry.WebhookStatusACTIVE, un.JSON200.Status)
	})
}

func TestIsolation(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, be storetest.Backend) {
		e := setup(t, be)
		w := e.register(e.alice, "https://example.com/h")
		bob := e.client(e.token("acme", "bob", auth.PermissionWebhookManagement))
		otherTenantAlice := e.client(e.token("globex", "alice", auth.PermissionWebhookManagement))
		for _, c := range []*hookferry.ClientWithResponses{bob, otherTenantAlice} {
			requireNotFound(t, c, w.Id)
			list, err := c.ListWebhooksWithResponse(ctx, nil)
			require.NoError(t, err)
			require.Empty(t, list.JSON200.Items)
			e.register(c, "https://example.com/h")
		}
		// Nothing the others did touched alice's webhook.
		get, err := e.alice.GetWebhookWithResponse(ctx, w.Id, nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, get.StatusCode())
		require.Equal(t, hookferry.WebhookStatusACTIVE, get.JSON200.Status)
		list, err := e.alice.ListWebhooksWithResponse(ctx, nil)
		require.NoError(t, err)
		require.Len(t, list.JSON200.Items, 1)
	})
}

func TestAuthentication(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, be storetest.Backend) {
		e := setup(t, be)
		w := e.register(e.alice, "https://example.com/h")
		revoked := e.token("acme", "alice", auth.PermissionWebhookManagement)
		_, err := e.store.RevokeToken(ctx, revoked)
		require.NoError(t, err)
		publisher := e.client(e.token("acme", "alice", auth.PermissionEventsPublish))

		for name, c := range map[string]*hookferry.ClientWithResponses{
			"no token":      e.client(""),
			"unknown token": e.client("hf_notarealtoken"),
			"revoked token": e.client(revoked),
		} {
			t.Run(name, func(t *testing.T) {
				forEveryOperation(t, c, w.Id, http.StatusUnauthorized, hookferry.ErrorCodeUNAUTHENTICATED)
			})
		}
		t.Run("missing permission", func(t *testing.T) {
			forEveryOperation(t, publisher, w.Id, http.StatusForbidden, hookferry.ErrorCodePERMISSIONDENIED)
		})
		t.Run("not a bearer token", func(t *testing.T) {
			res, err := e.alice.ListWebhooksWithResponse(ctx, nil, func(_ context.Context, req *http.Request) error {
				req.SetBasicAuth("alice", "secret")
				return nil
			})
			require.NoError(t, err)
			requireError(t, res, res.Body, http.StatusUnauthorized, hookferry.ErrorCodeUNAUTHENTICATED)
		})
		t.Run("401 and 403 come before 400", func(t *testing.T) {
			for status, c := range map[int]*hookferry.ClientWithResponses{http.StatusUnauthorized: e.client(""), http.StatusForbidden: publisher} {
				res, err := c.RegisterWebhookWithBodyWithResponse(ctx, "application/json", strings.NewReader(`{"url":"http://x"}`))
				require.NoError(t, err)
				require.Equal(t, status, res.StatusCode())
			}
		})
	})
}

// forEveryOperation calls each operation of the API and checks the error answer.
func forEveryOperation(t *testing.T, c *hookferry.ClientWithResponses, id string, status int, code hookferry.ErrorCode) {
	t.Helper()
	check := func(res response, body []byte, err error) {
		t.Helper()
		require.NoError(t, err)
		requireError(t, res, body, status, code)
	}
	list, err := c.ListWebhooksWithResponse(ctx, nil)
	check(list, list.Body, err)
	reg, err := c.RegisterWebhookWithResponse(ctx, registerBody("https://example.com/new"))
	check(reg, reg.Body, err)
	get, err := c.GetWebhookWithResponse(ctx, id, nil)
	check(get, get.Body, err)
	pause, err := c.PauseWebhookWithResponse(ctx, id)
	check(pause, pause.Body, err)
	unpause, err := c.UnpauseWebhookWithResponse(ctx, id, nil)
	check(unpause, unpause.Body, err)
	upd, err := c.UpdateWebhookWithResponse(ctx, id, hookferry.UpdateWebhookJSONRequestBody{Url: ptr("https://example.com/moved")})
	check(upd, upd.Body, err)
	del, err := c.DeleteWebhookWithResponse(ctx, id)
	check(del, del.Body, err)
	types, err := c.ListEventTypesWithResponse(ctx)
	check(types, types.Body, err)
}

// TestRegisterWebhookDomainRulesWin: a well-formed but unknown event type is
// INVALID_SUBSCRIPTION even when another part of the body breaks the schema.
func TestRegisterWebhookDomainRulesWin(t *testing.T) {
	t.Parallel()
	e := setup(t, storetest.Backends()[0])
	res, err := e.alice.RegisterWebhookWithBodyWithResponse(ctx, "application/json",
		strings.NewReader(`{"url":"https://example.com/h","subscription":{"event_types":["order.exploded"]},"colour":"red"}`))
	require.NoError(t, err)
	msg := requireError(t, res, res.Body, http.StatusBadRequest, hookferry.ErrorCodeINVALIDSUBSCRIPTION)
	require.Contains(t, msg, "order.exploded")
}
