package server_test

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hookferry/hookferry/auth"
	hookferry "github.com/hookferry/hookferry/clients/go"
	"github.com/hookferry/hookferry/server"
	"github.com/hookferry/hookferry/store/storetest"
	"github.com/stretchr/testify/require"
)

// session mints a portal session with the backend token and returns its
// credential, taken from the URL's fragment.
func (e *env) session(backend *hookferry.ClientWithResponses, user string, ttl *int) (hookferry.PortalSession, string) {
	e.t.Helper()
	res, err := backend.CreatePortalSessionWithResponse(context.Background(), hookferry.CreatePortalSessionJSONRequestBody{UserId: user, TtlSeconds: ttl})
	require.NoError(e.t, err)
	require.Equal(e.t, http.StatusCreated, res.StatusCode(), "body: %s", res.Body)
	_, credential, ok := strings.Cut(res.JSON201.Url, "#session=")
	require.True(e.t, ok, "the credential is in the fragment: %s", res.JSON201.Url)
	return *res.JSON201, credential
}

// TestPortalSessions: a backend with PORTAL_SESSIONS mints a session for a user
// of its tenant; the session acts as that user with WEBHOOK_MANAGEMENT only,
// until it expires (401).
func TestPortalSessions(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, be storetest.Backend) {
		e := setup(t, be)
		ctx := context.Background()
		backend := e.client(e.token("acme", "backend", auth.PermissionPortalSessions))

		s, credential := e.session(backend, "alice", nil)
		require.True(t, strings.HasPrefix(s.Url, "/portal/#session=hf_"), "relative without a public URL: %s", s.Url)
		require.True(t, s.ExpiresAt.Equal(e.clock.Now().Add(time.Hour)), "default ttl is an hour: %s", s.ExpiresAt)

		// The session is alice's: it sees her webhooks and nobody else's.
		e.register(e.alice, "https://example.com/alice")
		bob := e.client(e.token("acme", "bob", auth.PermissionWebhookManagement))
		e.register(bob, "https://example.com/bob")
		other := e.client(e.token("globex", "alice", auth.PermissionWebhookManagement))
		e.register(other, "https://example.com/globex-alice")
		portal := e.client(credential)
		list, err := portal.ListWebhooksWithResponse(ctx, nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, list.StatusCode())
		require.Len(t, list.JSON200.Items, 1)
		require.Equal(t, "https://example.com/alice", list.JSON200.Items[0].Url)

		// WEBHOOK_MANAGEMENT only: it neither publishes nor mints sessions.
		pub, err := portal.PublishEventWithResponse(ctx, hookferry.PublishEventJSONRequestBody{Type: "order.created", Data: []byte(`{}`)})
		require.NoError(t, err)
		requireError(t, pub, pub.Body, http.StatusForbidden, hookferry.ErrorCodePERMISSIONDENIED)
		again, err := portal.CreatePortalSessionWithResponse(ctx, hookferry.CreatePortalSessionJSONRequestBody{UserId: "bob"})
		require.NoError(t, err)
		requireError(t, again, again.Body, http.StatusForbidden, hookferry.ErrorCodePERMISSIONDENIED)

		// Expired: 401, also once cached.
		e.clock.Advance(time.Hour - time.Second)
		list, err = portal.ListWebhooksWithResponse(ctx, nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, list.StatusCode())
		e.clock.Advance(time.Second)
		list, err = portal.ListWebhooksWithResponse(ctx, nil)
		require.NoError(t, err)
		msg := requireError(t, list, list.Body, http.StatusUnauthorized, hookferry.ErrorCodeUNAUTHENTICATED)
		require.Contains(t, msg, "expired")

		// A shorter session ends sooner.
		short, credential := e.session(backend, "alice", ptr(60))
		require.True(t, short.ExpiresAt.Equal(e.clock.Now().Add(time.Minute)))
		e.clock.Advance(time.Minute)
		list, err = e.client(credential).ListWebhooksWithResponse(ctx, nil)
		require.NoError(t, err)
		requireError(t, list, list.Body, http.StatusUnauthorized, hookferry.ErrorCodeUNAUTHENTICATED)
	})
}

// TestPortalSessionPermission: only PORTAL_SESSIONS mints sessions.
func TestPortalSessionPermission(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, be storetest.Backend) {
		e := setup(t, be)
		for _, perm := range []auth.Permission{auth.PermissionWebhookManagement, auth.PermissionEventsPublish} {
			c := e.client(e.token("acme", "backend", perm))
			res, err := c.CreatePortalSessionWithResponse(context.Background(), hookferry.CreatePortalSessionJSONRequestBody{UserId: "alice"})
			require.NoError(t, err)
			requireError(t, res, res.Body, http.StatusForbidden, hookferry.ErrorCodePERMISSIONDENIED)
		}
		res, err := e.client("").CreatePortalSessionWithResponse(context.Background(), hookferry.CreatePortalSessionJSONRequestBody{UserId: "alice"})
		require.NoError(t, err)
		requireError(t, res, res.Body, http.StatusUnauthorized, hookferry.ErrorCodeUNAUTHENTICATED)
	})
}

// TestPortalSessionBadInput: what the contract refuses is 400 INVALID_REQUEST.
func TestPortalSessionBadInput(t *testing.T) {
	t.Parallel()
	e := setup(t, storetest.Backends()[0])
	backend := e.client(e.token("acme", "backend", auth.PermissionPortalSessions))
	for name, body := range map[string]string{
		"ttl too short":    `{"user_id":"alice","ttl_seconds":59}`,
		"ttl too long":     `{"user_id":"alice","ttl_seconds":86401}`,
		"ttl not integer":  `{"user_id":"alice","ttl_seconds":60.5}`,
		"ttl a string":     `{"user_id":"alice","ttl_seconds":"60"}`,
		"no user":          `{"ttl_seconds":60}`,
		"empty user":       `{"user_id":""}`,
		"blank user":       `{"user_id":"  "}`,
		"user too long":    `{"user_id":"` + strings.Repeat("a", 256) + `"}`,
		"user NUL":         `{"user_id":"a\u0000b"}`,
		"unknown property": `{"user_id":"alice","tenant_id":"globex"}`,
		"not JSON":         `{"user_id":`,
		"not an object":    `["alice"]`,
	} {
		t.Run(name, func(t *testing.T) {
			res, err := backend.CreatePortalSessionWithBodyWithResponse(context.Background(), "application/json", bytes.NewReader([]byte(body)))
			require.NoError(t, err)
			requireError(t, res, res.Body, http.StatusBadRequest, hookferry.ErrorCodeINVALIDREQUEST)
		})
	}
}

// TestPortalSessionPublicURL: with a public URL the session URL is absolute.
func TestPortalSessionPublicURL(t *testing.T) {
	t.Parallel()
	e := setup(t, storetest.Backends()[0], func(c *server.Config) { c.PublicURL = "https://hooks.example.com/" })
	s, _ := e.session(e.client(e.token("acme", "backend", auth.PermissionPortalSessions)), "alice", nil)
	require.True(t, strings.HasPrefix(s.Url, "https://hooks.example.com/portal/#session=hf_"), s.Url)
}

// TestPortalServed: the page is served from the binary under a strict CSP
// whose frame-ancestors the deployment sets.
func TestPortalServed(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ set, want string }{
		{"", "frame-ancestors 'self'"},
		{"'self' https://app.example.com", "frame-ancestors 'self' https://app.example.com"},
	} {
		e := setup(t, storetest.Backends()[0], func(c *server.Config) { c.PortalFrameAncestors = tt.set })
		for _, path := range []string{"/portal/", "/portal/portal.js", "/portal/portal.css"} {
			res, err := http.Get(e.url + path)
			require.NoError(t, err)
			_ = res.Body.Close()
			require.Equal(t, http.StatusOK, res.StatusCode, path)
			csp := res.Header.Get("Content-Security-Policy")
			require.Contains(t, csp, "default-src 'none'", path)
			require.Contains(t, csp, "script-src 'self';", path)
			require.NotContains(t, csp, "unsafe", path)
			require.True(t, strings.HasSuffix(csp, tt.want), "%s: %s", path, csp)
			require.Equal(t, "nosniff", res.Header.Get("X-Content-Type-Options"))
		}
		res, err := http.Get(e.url + "/portal/nope.js")
		require.NoError(t, err)
		_ = res.Body.Close()
		require.Equal(t, http.StatusNotFound, res.StatusCode)
	}
	require.Error(t, server.CheckFrameAncestors("'self'; script-src *"), "a ; would add a directive")
	require.Error(t, server.CheckFrameAncestors("https://a.example.com,https://b.example.com"))
	require.Error(t, server.CheckFrameAncestors(" "))
	require.NoError(t, server.CheckFrameAncestors("'none'"))
}
