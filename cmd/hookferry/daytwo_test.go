package main

import (
	"encoding/json"
	"io"
	"time"

	"context"
	hookferry "github.com/hookferry/hookferry/clients/go"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/hookferry/hookferry/store/storetest"
	"github.com/stretchr/testify/require"
)

// TestProcessesStartingAtOnce: a server, token commands and migrate up start
// together on a new database; every one comes up, and the schema is whole.
func TestProcessesStartingAtOnce(t *testing.T) {
	t.Parallel()
	for _, be := range storetest.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			t.Parallel()
			db := be.URL(t)
			dir := t.TempDir()
			env := append(keyEnv, "HOOKFERRY_DATABASE_URL="+db)
			var wg sync.WaitGroup
			var server *child
			wg.Go(func() { server = startServer(t, env...) })
			const n = 6
			codes, stderrs := make([]int, n), make([]string, n)
			for i := range n {
				wg.Go(func() {
					args := []string{"token", "create", "--tenant", "acme", "--user", "alice", "--permission", "EVENTS_PUBLISH"}
					if i%2 == 1 {
						args = []string{"migrate", "up"}
					}
					codes[i], _, stderrs[i] = binary(t, dir, env, args...)
				})
			}
			wg.Wait()
			for i := range n {
				require.Equal(t, 0, codes[i], "process %d: %s", i, stderrs[i])
			}
			code, stdout, stderr := binary(t, dir, env, "migrate", "status")
			require.Equal(t, 0, code, stderr)
			require.NotContains(t, stdout, "pending", stdout)
			resp, err := http.Get(server.url() + "/readyz")
			require.NoError(t, err)
			resp.Body.Close()
			require.Equal(t, http.StatusOK, resp.StatusCode)
			server.terminate()
		})
	}
}

// TestRevokeTakesEffectAtOnce: a token revoked with the CLI is refused by a
// running server from the moment the CLI returns, though the server has it
// cached.
func TestRevokeTakesEffectAtOnce(t *testing.T) {
	t.Parallel()
	for _, be := range storetest.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			t.Parallel()
			db := be.URL(t)
			dir := t.TempDir()
			env := append(keyEnv, "HOOKFERRY_DATABASE_URL="+db)
			server := startServer(t, env...)
			defer server.terminate()
			status := func(token string) int {
				req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, server.url()+"/v1/webhooks", nil)
				require.NoError(t, err)
				req.Header.Set("Authorization", "Bearer "+token)
				resp, err := http.DefaultClient.Do(req)
				require.NoError(t, err)
				resp.Body.Close()
				return resp.StatusCode
			}
			for range 5 {
				code, token, stderr := binary(t, dir, env, "token", "create", "--tenant", "acme", "--user", "alice", "--permission", "WEBHOOK_MANAGEMENT")
				require.Equal(t, 0, code, stderr)
				token = strings.TrimSpace(token)
				require.Equal(t, http.StatusOK, status(token))
				require.Equal(t, http.StatusOK, status(token), "now from the cache")
				code, _, stderr = binary(t, dir, env, "token", "revoke", token)
				require.Equal(t, 0, code, stderr)
				require.Equal(t, http.StatusUnauthorized, status(token), "refused right after the CLI returned")
			}
		})
	}
}

// TestServePrunesOnItsInterval: a delivered delivery older than the retention
// leaves the delivery log at the next prune, counted in the metrics.
func TestServePrunesOnItsInterval(t *testing.T) {
	t.Parallel()
	for _, be := range storetest.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			t.Parallel()
			db := be.URL(t)
			dir := t.TempDir()
			rcv := newReceivers(t)
			env := append(keyEnv, "HOOKFERRY_DATABASE_URL="+db, "HOOKFERRY_ALLOW_PRIVATE_TARGETS=true",
				"HOOKFERRY_DELIVERY_CA_FILE="+rcv.caFile, "HOOKFERRY_RETENTION=1ms", "HOOKFERRY_PRUNE_INTERVAL=20ms")
			server := startServer(t, env...)
			defer server.terminate()
			_, manage, _ := binary(t, dir, env, "token", "create", "--tenant", "acme", "--user", "alice", "--permission", "WEBHOOK_MANAGEMENT")
			_, publish, _ := binary(t, dir, env, "token", "create", "--tenant", "acme", "--user", "p", "--permission", "EVENTS_PUBLISH")
			c := client(t, server.url(), strings.TrimSpace(manage))
			rcv.register(c, "/pruned")
			list, err := c.ListWebhooksWithResponse(context.Background(), nil)
			require.NoError(t, err)
			hook := list.JSON200.Items[0].Id
			pub, err := client(t, server.url(), strings.TrimSpace(publish)).PublishEventWithResponse(context.Background(),
				hookferry.PublishEventJSONRequestBody{Type: "order.created", Data: json.RawMessage(`{"n":1}`)})
			require.NoError(t, err)
			require.Equal(t, http.StatusAccepted, pub.StatusCode(), "%s", pub.Body)
			rcv.waitDelivered([]string{pub.JSON202.Id}, server.log)

			pruned := func() string {
				resp, err := http.Get(server.url() + "/metrics")
				require.NoError(t, err)
				defer resp.Body.Close()
				body, err := io.ReadAll(resp.Body)
				require.NoError(t, err)
				var lines []string
				for _, l := range strings.Split(string(body), "\n") {
					if strings.HasPrefix(l, "hookferry_pruned_rows_total{") {
						lines = append(lines, l)
					}
				}
				return strings.Join(lines, "\n")
			}
			// Delivered at the first attempt, the delivery is the log of its
			// attempt: no attempt row to prune.
			want := "hookferry_pruned_rows_total{table=\"deliveries\"} 1\n" +
				"hookferry_pruned_rows_total{table=\"events\"} 1"
			deadline := time.Now().Add(30 * time.Second)
			for pruned() != want {
				require.True(t, time.Now().Before(deadline), "never pruned: %q\n%s", pruned(), server.log())
				time.Sleep(20 * time.Millisecond)
			}
			log, err := c.ListDeliveriesWithResponse(context.Background(), hook, nil)
			require.NoError(t, err)
			require.Empty(t, log.JSON200.Items, "the delivery left the log")
			require.Contains(t, server.log(), `"msg":"pruned"`)
		})
	}
}
