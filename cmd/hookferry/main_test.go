package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hookferry/hookferry/apitest"
	hookferry "github.com/hookferry/hookferry/clients/go"
	"github.com/hookferry/hookferry/store/storetest"
	"github.com/stretchr/testify/require"
)

// testKeys is the encryption key of the tests' databases, given to every
// command through HOOKFERRY_ENCRYPTION_KEYS (PostgreSQL has no key file).
const testKeys = storetest.TestKey

// TestMain lets the tests run this binary's main as a child process.
func TestMain(m *testing.M) {
	if os.Getenv("HOOKFERRY_TEST_RUN_MAIN") == "1" {
		main()
		return
	}
	if _, ok := os.LookupEnv("HOOKFERRY_ENCRYPTION_KEYS"); !ok {
		os.Setenv("HOOKFERRY_ENCRYPTION_KEYS", testKeys)
	}
	os.Exit(m.Run())
}

// run executes a hookferry command line in-process.
func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = Run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestTokenCommands(t *testing.T) {
	t.Parallel()
	for _, be := range storetest.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			t.Parallel()
			db := be.URL(t)
			code, token, stderr := run(t, "token", "create", "--database-url", db, "--tenant", "acme", "--user", "alice",
				"--permission", "WEBHOOK_MANAGEMENT", "--permission", "events_publish", "--permission", "WEBHOOK_MANAGEMENT")
			require.Equal(t, 0, code, stderr)
			require.Regexp(t, `^hf_[a-z2-7]{52}\n$`, token, "the token alone on stdout")
			token = strings.TrimSpace(token)
			code, second, _ := run(t, "token", "create", "--database-url", db, "--tenant", "acme", "--user", "bob", "--permission", "EVENTS_PUBLISH")
			require.Equal(t, 0, code)
			second = strings.TrimSpace(second)

			code, list, stderr := run(t, "token", "list", "--database-url", db)
			require.Equal(t, 0, code, stderr)
			lines := strings.Split(strings.TrimSpace(list), "\n")
			require.Len(t, lines, 3, list)
			require.Regexp(t, `^ID\s+TENANT\s+USER\s+PERMISSIONS\s+CREATED\s+REVOKED\s+EXPIRES$`, lines[0])
			require.Regexp(t, `^tok_\w+\s+acme\s+alice\s+WEBHOOK_MANAGEMENT,EVENTS_PUBLISH\s+\S+Z\s+-\s+-$`, lines[1])
			require.Regexp(t, `^tok_\w+\s+acme\s+bob\s+EVENTS_PUBLISH\s+\S+Z\s+-\s+-$`, lines[2])
			require.NotContains(t, list, token)
			require.NotContains(t, list, second)
			firstID := strings.Fields(lines[1])[0]

			// Revoke by id, then by the token itself.
			code, out, stderr := run(t, "token", "revoke", "--database-url", db, firstID)
			require.Equal(t, 0, code, stderr)
			require.Contains(t, out, firstID)
			code, _, stderr = run(t, "token", "revoke", "--database-url", db, second)
			require.Equal(t, 0, code, stderr)
			_, list, _ = run(t, "token", "list", "--database-url", db)
			for _, line := range strings.Split(strings.TrimSpace(list), "\n")[1:] {
				require.Regexp(t, `\d\dZ\s+\d{4}-\d\d-\d\dT\S+Z\s+-$`, line, "revoked")
			}

			code, _, stderr = run(t, "token", "revoke", "--database-url", db, "tok_unknown")
			require.Equal(t, 1, code)
			require.Contains(t, stderr, "no token")
		})
	}
}

func TestTokenCreateRejectsBadUsage(t *testing.T) {
	t.Parallel()
	db := storetest.SQLiteURL(t)
	for _, args := range [][]string{
		{"token", "create", "--database-url", db, "--user", "u", "--permission", "EVENTS_PUBLISH"},
		{"token", "create", "--database-url", db, "--tenant", "t", "--permission", "EVENTS_PUBLISH"},
		{"token", "create", "--database-url", db, "--tenant", "t", "--user", "u"},
		{"token", "create", "--database-url", db, "--tenant", "t", "--user", "u", "--permission", "ADMIN"},
		{"token", "revoke", "--database-url", db},
		{"token", "frobnicate"},
		{"token"},
		{"frobnicate"},
	} {
		code, stdout, stderr := run(t, args...)
		require.Equal(t, 2, code, "%v: %s", args, stderr)
		require.Empty(t, stdout)
		require.NotEmpty(t, stderr)
	}
}

func TestVersion(t *testing.T) {
	t.Parallel()
	code, out, _ := run(t, "version")
	require.Equal(t, 0, code)
	require.Regexp(t, `^hookferry \S+\n$`, out)
}

func TestServeRejectsBadConfiguration(t *testing.T) {
	for _, tc := range []struct{ env, value string }{
		{"HOOKFERRY_UNPAUSE_COOLDOWN", "ten seconds"},
		{"HOOKFERRY_MAX_WEBHOOKS_PER_USER", "many"},
		{"HOOKFERRY_ALLOW_PRIVATE_TARGETS", "perhaps"},
		{"HOOKFERRY_LOG_FORMAT", "xml"},
		{"HOOKFERRY_MAX_WEBHOOKS_PER_USER", "0"},
		{"HOOKFERRY_PUBLIC_URL", "hooks.example.com"},
		{"HOOKFERRY_PUBLIC_URL", "https://hooks.example.com/?x=1"},
		{"HOOKFERRY_PORTAL_FRAME_ANCESTORS", "'self'; script-src *"},
	} {
		t.Setenv(tc.env, tc.value)
		code, _, stderr := run(t, "serve", "--addr", "127.0.0.1:0", "--database-url", storetest.SQLiteURL(t))
		require.Equal(t, 2, code, "%s=%s", tc.env, tc.value)
		require.Contains(t, stderr, "hookferry serve:")
		os.Unsetenv(tc.env)
	}
}

// TestServeEndToEnd starts the service as `hookferry serve` does, creates a
// token with the CLI on the same database and uses it through the client.
func TestServeEndToEnd(t *testing.T) {
	t.Parallel()
	for _, be := range storetest.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			t.Parallel()
			db := be.URL(t)
			m := &Main{Config: Config{Addr: "127.0.0.1:0", DatabaseURL: db, EncryptionKeys: testKeys, MaxWebhooksPerUser: 25, UnpauseCooldown: 10 * time.Second}}
			require.NoError(t, m.Open(context.Background()))
			t.Cleanup(func() { require.NoError(t, m.Close()) })

			code, token, stderr := run(t, "token", "create", "--database-url", db, "--tenant", "acme", "--user", "alice", "--permission", "WEBHOOK_MANAGEMENT")
			require.Equal(t, 0, code, stderr)
			c := client(t, "http://"+m.Addr(), strings.TrimSpace(token))
			res, err := c.RegisterWebhookWithResponse(context.Background(), hookferry.RegisterWebhookJSONRequestBody{
				Url: "https://example.com/h", Subscription: hookferry.Subscription{EventTypes: []string{"order.created"}},
			})
			require.NoError(t, err)
			require.Equal(t, http.StatusCreated, res.StatusCode(), "%s", res.Body)
			ready, err := c.GetReadinessWithResponse(context.Background())
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, ready.StatusCode())

			_, publish, _ := run(t, "token", "create", "--database-url", db, "--tenant", "acme", "--user", "producer", "--permission", "EVENTS_PUBLISH")
			pub, err := client(t, "http://"+m.Addr(), strings.TrimSpace(publish)).PublishEventWithResponse(context.Background(),
				hookferry.PublishEventJSONRequestBody{Type: "order.created", Data: []byte(`{"order":1}`)})
			require.NoError(t, err)
			require.Equal(t, http.StatusAccepted, pub.StatusCode(), "%s", pub.Body)
			require.EqualValues(t, 1, pub.JSON202.Deliveries)

			// An API-only instance (no delivery workers) keeps the delivery queued.
			res2, err := http.Get("http://" + m.Addr() + "/metrics")
			require.NoError(t, err)
			defer res2.Body.Close()
			metrics, err := io.ReadAll(res2.Body)
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, res2.StatusCode)
			require.Contains(t, string(metrics), "hookferry_events_published_total 1\n")
			require.Contains(t, string(metrics), "hookferry_queue_depth 1\n")
			require.Contains(t, string(metrics), "hookferry_deliveries_in_flight 0\n")
			require.Contains(t, string(metrics), "go_goroutines")
		})
	}
}

// TestShutdownFinishesInFlightRequests closes the service while a request is
// still sending its body: the request completes, then Close returns.
func TestShutdownFinishesInFlightRequests(t *testing.T) {
	t.Parallel()
	db := storetest.SQLiteURL(t)
	active := make(chan struct{}, 1)
	m := &Main{Config: Config{Addr: "127.0.0.1:0", DatabaseURL: db, EncryptionKeys: testKeys, MaxWebhooksPerUser: 25}}
	m.connState = func(_ net.Conn, state http.ConnState) {
		if state == http.StateActive {
			active <- struct{}{}
		}
	}
	require.NoError(t, m.Open(context.Background()))
	_, token, _ := run(t, "token", "create", "--database-url", db, "--tenant", "acme", "--user", "alice", "--permission", "WEBHOOK_MANAGEMENT")
	c := client(t, "http://"+m.Addr(), strings.TrimSpace(token))

	body, send := io.Pipe()
	answered := make(chan *hookferry.RegisterWebhookResponse, 1)
	go func() {
		res, err := c.RegisterWebhookWithBodyWithResponse(context.Background(), "application/json", body)
		if err != nil {
			t.Errorf("in-flight request: %v", err)
		}
		answered <- res
	}()
	_, err := send.Write([]byte(`{"url":"https://example.com/h",`))
	require.NoError(t, err)
	<-active

	closed := make(chan error, 1)
	go func() { closed <- m.Close() }()
	select {
	case err := <-closed:
		t.Fatalf("Close returned before the in-flight request finished: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	_, err = send.Write([]byte(`"subscription":{"event_types":["order.created"]}}`))
	require.NoError(t, err)
	require.NoError(t, send.Close())
	res := <-answered
	require.NotNil(t, res)
	require.Equal(t, http.StatusCreated, res.StatusCode(), "%s", res.Body)
	require.NoError(t, <-closed)
}

// TestSIGTERM runs the real binary as a child process: it serves, logs one
// line per request without tokens or secrets, and exits 0 on SIGTERM.
func TestSIGTERM(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := "sqlite:" + dir + "/hookferry.db"
	_, token, _ := run(t, "token", "create", "--database-url", db, "--tenant", "acme", "--user", "alice", "--permission", "WEBHOOK_MANAGEMENT")
	token = strings.TrimSpace(token)

	cmd := exec.Command(os.Args[0], "serve", "--addr", "127.0.0.1:0", "--log-format", "json")
	cmd.Env = append(os.Environ(), "HOOKFERRY_TEST_RUN_MAIN=1", "HOOKFERRY_DATABASE_URL="+db)
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	logs := make(chan string, 100)
	go func() {
		s := bufio.NewScanner(stderr)
		for s.Scan() {
			logs <- s.Text()
		}
		close(logs)
	}()
	var addr string
	var all strings.Builder
	for line := range logs {
		all.WriteString(line + "\n")
		if m := regexp.MustCompile(`"addr":"([^"]+)"`).FindStringSubmatch(line); m != nil {
			addr = m[1]
			break
		}
	}
	require.NotEmpty(t, addr, "no listening line in: %s", all.String())

	c := client(t, "http://"+addr, token)
	res, err := c.RegisterWebhookWithResponse(context.Background(), hookferry.RegisterWebhookJSONRequestBody{
		Url: "https://example.com/h", Subscription: hookferry.Subscription{EventTypes: []string{"order.created"}},
	})
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, res.StatusCode())
	secret := res.JSON201.Authentication.Secret

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	for line := range logs {
		all.WriteString(line + "\n")
	}
	require.NoError(t, cmd.Wait(), "exit status after SIGTERM; logs:\n%s", all.String())
	require.Equal(t, 0, cmd.ProcessState.ExitCode())
	out := all.String()
	require.Regexp(t, `"method":"POST","path":"/v1/webhooks","status":201,"duration_ms":[\d.]+,"request_id":"\w+"`, out)
	require.Contains(t, out, `"msg":"hookferry stopped"`)
	require.NotContains(t, out, token)
	require.NotContains(t, out, secret)
}

func client(t *testing.T, baseURL, token string) *hookferry.ClientWithResponses {
	t.Helper()
	c, err := hookferry.NewClientWithResponses(baseURL, hookferry.WithHTTPClient(apitest.Client(t)), hookferry.WithRequestEditorFn(func(_ context.Context, req *http.Request) error {
		req.Header.Set("Authorization", "Bearer "+token)
		return nil
	}))
	require.NoError(t, err)
	return c
}
