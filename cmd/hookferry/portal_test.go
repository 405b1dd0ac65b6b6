package main

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	hookferry "github.com/hookferry/hookferry/clients/go"
	"github.com/hookferry/hookferry/store/storetest"
	"github.com/stretchr/testify/require"
)

// TestPortalSettings: HOOKFERRY_PUBLIC_URL makes session URLs absolute,
// HOOKFERRY_PORTAL_FRAME_ANCESTORS sets the portal's frame-ancestors, and
// token list shows when the session's token expires.
func TestPortalSettings(t *testing.T) {
	t.Parallel()
	db := storetest.SQLiteURL(t)
	srv := startServer(t, "HOOKFERRY_DATABASE_URL="+db, "HOOKFERRY_PUBLIC_URL=https://hooks.example.com/",
		"HOOKFERRY_PORTAL_FRAME_ANCESTORS='none'")
	code, out, stderr := run(t, "token", "create", "--database-url", db, "--tenant", "acme", "--user", "backend", "--permission", "portal_sessions")
	require.Equal(t, 0, code, stderr)
	res, err := client(t, srv.url(), strings.TrimSpace(out)).CreatePortalSessionWithResponse(context.Background(),
		hookferry.CreatePortalSessionJSONRequestBody{UserId: "alice", TtlSeconds: ptr(600)})
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, res.StatusCode(), "%s", res.Body)
	require.True(t, strings.HasPrefix(res.JSON201.Url, "https://hooks.example.com/portal/#session=hf_"), res.JSON201.Url)
	require.WithinDuration(t, time.Now().Add(10*time.Minute), res.JSON201.ExpiresAt, 30*time.Second)

	page, err := http.Get(srv.url() + "/portal/")
	require.NoError(t, err)
	_ = page.Body.Close()
	require.True(t, strings.HasSuffix(page.Header.Get("Content-Security-Policy"), "; frame-ancestors 'none'"), page.Header.Get("Content-Security-Policy"))

	code, list, stderr := run(t, "token", "list", "--database-url", db)
	require.Equal(t, 0, code, stderr)
	require.Regexp(t, `acme\s+alice\s+WEBHOOK_MANAGEMENT\s+\S+Z\s+-\s+`+res.JSON201.ExpiresAt.UTC().Format(time.RFC3339)+`\n`, list)
	require.Regexp(t, `acme\s+backend\s+PORTAL_SESSIONS\s+\S+Z\s+-\s+-\n`, list)
}
