package main

import (
	"bufio"
	"context"
	"crypto/x509"
	"database/sql"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	hookferry "github.com/hookferry/hookferry/clients/go"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/require"
)

// child is hookferry running as a child process: the real binary, killed for
// real.
type child struct {
	t    *testing.T
	cmd  *exec.Cmd
	addr string
	mu   sync.Mutex
	logs strings.Builder
	exit chan error
}

var listeningAddr = regexp.MustCompile(`"addr":"([^"]+)"`)

// startServer runs `hookferry serve` with env added to the test's environment.
func startServer(t *testing.T, env ...string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "serve", "--addr", "127.0.0.1:0", "--log-format", "json")
	cmd.Env = append(append(os.Environ(), "HOOKFERRY_TEST_RUN_MAIN=1"), env...)
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	s := &child{t: t, cmd: cmd, exit: make(chan error, 1)}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			s.mu.Lock()
			s.logs.WriteString(line + "\n")
			s.mu.Unlock()
			if m := listeningAddr.FindStringSubmatch(line); m != nil {
				addr <- m[1]
			}
		}
		s.exit <- cmd.Wait()
	}()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	select {
	case s.addr = <-addr:
	case err := <-s.exit:
		t.Fatalf("hookferry exited before listening: %v\n%s", err, s.log())
	case <-time.After(60 * time.Second):
		t.Fatalf("hookferry never listened:\n%s", s.log())
	}
	return s
}

func (s *child) url() string { return "http://" + s.addr }

func (s *child) log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logs.String()
}

// kill ends the process at once, as a crash would.
func (s *child) kill() {
	require.NoError(s.t, s.cmd.Process.Signal(syscall.SIGKILL))
	<-s.exit
}

// terminate sends SIGTERM and requires a clean exit.
func (s *child) terminate() {
	require.NoError(s.t, s.cmd.Process.Signal(syscall.SIGTERM))
	err := <-s.exit
	require.NoError(s.t, err, "exit after SIGTERM; logs:\n%s", s.log())
}

// receivers are HTTPS webhook endpoints that verify every delivery with the
// Standard Webhooks reference verifier and count what each received.
type receivers struct {
	t       *testing.T
	srv     *httptest.Server
	caFile  string
	delay   time.Duration // before answering
	started atomic.Int64  // requests received, answered or not

	mu      sync.Mutex
	secrets map[string]string         // path -> secret
	got     map[string]map[string]int // path -> event id -> times received
}

func newReceivers(t *testing.T) *receivers {
	t.Helper()
	r := &receivers{t: t, secrets: map[string]string{}, got: map[string]map[string]int{}}
	r.srv = httptest.NewTLSServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	r.caFile = writeCA(t, r.srv)
	return r
}

// writeCA writes srv's certificate to a PEM file for HOOKFERRY_DELIVERY_CA_FILE.
func writeCA(t *testing.T, srv *httptest.Server) string {
	t.Helper()
	_, err := x509.ParseCertificate(srv.Certificate().Raw)
	require.NoError(t, err)
	file := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600))
	return file
}

func (r *receivers) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return
	}
	r.mu.Lock()
	secret := r.secrets[req.URL.Path]
	r.mu.Unlock()
	verifier, err := standardwebhooks.NewWebhook(secret)
	if err == nil {
		err = verifier.Verify(body, req.Header)
	}
	if err != nil {
		r.t.Errorf("delivery to %s does not verify: %v", req.URL.Path, err)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	r.started.Add(1)
	if r.delay > 0 {
		time.Sleep(r.delay)
	}
	r.mu.Lock()
	if r.got[req.URL.Path] == nil {
		r.got[req.URL.Path] = map[string]int{}
	}
	r.got[req.URL.Path][req.Header.Get("webhook-id")]++
	r.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// register creates a webhook for path through the API and remembers its secret.
func (r *receivers) register(c *hookferry.ClientWithResponses, path string) {
	r.t.Helper()
	res, err := c.RegisterWebhookWithResponse(context.Background(), hookferry.RegisterWebhookJSONRequestBody{
		Url: r.srv.URL + path, Subscription: hookferry.Subscription{EventTypes: []string{"order.created"}},
	})
	require.NoError(r.t, err)
	require.Equal(r.t, http.StatusCreated, res.StatusCode(), "%s", res.Body)
	r.mu.Lock()
	r.secrets[path] = res.JSON201.Authentication.Secret
	r.mu.Unlock()
}

// missing counts the (path, event) pairs not yet received; duplicates counts
// extra receptions.
func (r *receivers) tally(events []string) (missing, duplicates int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for path := range r.secrets {
		for _, id := range events {
			switch n := r.got[path][id]; {
			case n == 0:
				missing++
			case n > 1:
				duplicates += n - 1
			}
		}
	}
	return missing, duplicates
}

// waitDelivered waits until every event reached every receiver.
func (r *receivers) waitDelivered(events []string, logs func() string) (duplicates int) {
	r.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		missing, dups := r.tally(events)
		if missing == 0 {
			return dups
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("%d deliveries never arrived; server logs:\n%s", missing, logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// publisher publishes numbered events with producer ids, retrying each until
// some server acknowledges it: a retry of an event whose 202 was lost answers
// the original, so every acknowledged id is an event that must be delivered.
type publisher struct {
	t     *testing.T
	token string
	mu    sync.Mutex
	acked map[int]string // sequence -> event id
}

func (p *publisher) publish(baseURL func() string, seq int) {
	for attempt := 0; ; attempt++ {
		c := client(p.t, baseURL(), p.token)
		res, err := c.PublishEventWithResponse(context.Background(), hookferry.PublishEventJSONRequestBody{
			Type: "order.created", Id: ptr(fmt.Sprintf("order-%d", seq)), Data: json.RawMessage(fmt.Sprintf(`{"seq":%d}`, seq)),
		})
		if err == nil && res.StatusCode() == http.StatusAccepted {
			p.mu.Lock()
			p.acked[seq] = res.JSON202.Id
			p.mu.Unlock()
			return
		}
		if attempt > 2000 {
			p.t.Errorf("event %d never acknowledged: %v %v", seq, err, res)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (p *publisher) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.acked)
}

func (p *publisher) events() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]string, 0, len(p.acked))
	for _, id := range p.acked {
		out = append(out, id)
	}
	return out
}

func ptr[T any](v T) *T { return &v }

// deliveryEnv is what every process test gives hookferry: private targets (the
// receivers are on 127.0.0.1) trusted through the receivers' certificate, and
// a short lease so that a killed process's work is taken over quickly.
func deliveryEnv(db string, r *receivers, extra ...string) []string {
	return append([]string{
		"HOOKFERRY_DATABASE_URL=" + db,
		"HOOKFERRY_ALLOW_PRIVATE_TARGETS=true",
		"HOOKFERRY_DELIVERY_CA_FILE=" + r.caFile,
		"HOOKFERRY_DELIVERY_TIMEOUT=1s",
		"HOOKFERRY_DELIVERY_LEASE=4s",
		"HOOKFERRY_RETRY_SCHEDULE=10ms,50ms,100ms,200ms,500ms,1s,1s,1s,1s,1s",
	}, extra...)
}

// tokens creates a management and a publishing token on db.
func tokens(t *testing.T, db string) (manage, publish string) {
	t.Helper()
	code, out, stderr := run(t, "token", "create", "--database-url", db, "--tenant", "acme", "--user", "alice", "--permission", "WEBHOOK_MANAGEMENT")
	require.Equal(t, 0, code, stderr)
	manage = strings.TrimSpace(out)
	code, out, stderr = run(t, "token", "create", "--database-url", db, "--tenant", "acme", "--user", "producer", "--permission", "EVENTS_PUBLISH")
	require.Equal(t, 0, code, stderr)
	return manage, strings.TrimSpace(out)
}

func sleepBriefly() { time.Sleep(5 * time.Millisecond) }

// terminateConnections kills every connection to db's database but its own.
func terminateConnections(t *testing.T, db string) {
	t.Helper()
	u, err := url.Parse(db)
	require.NoError(t, err)
	conn, err := sql.Open("pgx", db)
	require.NoError(t, err)
	defer conn.Close()
	var n int
	require.NoError(t, conn.QueryRow(`SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = $1 AND pid <> pg_backend_pid()`, strings.TrimPrefix(u.Path, "/")).Scan(&n))
	t.Logf("terminated %d connections", n)
}
