package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookferry/hookferry/keyring"
	"github.com/hookferry/hookferry/store"
	"github.com/hookferry/hookferry/store/storetest"
	"github.com/hookferry/hookferry/webhook"
	"github.com/stretchr/testify/require"
)

// binary runs the real hookferry binary (this test binary re-executing main)
// in dir, with none of the test process's HOOKFERRY_ settings but env.
func binary(t *testing.T, dir string, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	// A command that should have stopped at once but serves is a failure, not a hang.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Dir = dir
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HOOKFERRY_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(append(cmd.Env, "HOOKFERRY_TEST_RUN_MAIN=1"), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatalf("run hookferry %v: %v", args, err)
	}
	if ctx.Err() != nil {
		t.Fatalf("hookferry %v still ran after a minute:\n%s", args, errOut.String())
	}
	return cmd.ProcessState.ExitCode(), out.String(), errOut.String()
}

// keyEnv gives a command the tests' key.
var keyEnv = []string{"HOOKFERRY_ENCRYPTION_KEYS=" + testKeys}

// files lists what dir holds, recursively.
func files(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	require.NoError(t, filepath.WalkDir(dir, func(path string, _ os.DirEntry, err error) error {
		if path != dir {
			out = append(out, path)
		}
		return err
	}))
	return out
}

// storeFlagNames are the flags every command takes.
var storeFlagNames = []string{"--database-url", "--encryption-keys-file", "--[no-]migrate", "HOOKFERRY_DATABASE_URL"}

func TestHelpOfEveryCommand(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		command string
		names   []string // arguments and flags the help must name
	}{
		{"", []string{"--version", "serve", "token create", "token list", "token revoke", "migrate up", "migrate status", "prune", "erase", "keys generate", "keys rotate", "version", "help"}},
		{"serve", []string{"--addr", "HOOKFERRY_ADDR", "--max-webhooks-per-user", "--unpause-cooldown", "--event-types", "--allow-private-targets", "--rate-limit", "HOOKFERRY_RATE_LIMIT", "--max-batch-bytes", "HOOKFERRY_MAX_BATCH_BYTES",
			"--log-format", "--log-level", "--shutdown-timeout", "--retention", "HOOKFERRY_RETENTION", "--prune-interval", "HOOKFERRY_PRUNE_INTERVAL",
			"--[no-]delivery", "--delivery-ca-file", "--retry-schedule", "--delivery-timeout", "--delivery-lease", "--auto-pause-after",
			"--delivery-workers", "--delivery-per-webhook", "--delivery-per-tenant", "--delivery-per-user",
			"--delivery-held-back-workers", "--delivery-slow-after", "HOOKFERRY_DELIVERY_SLOW_AFTER"}},
		{"token", []string{"token create", "token list", "token revoke"}},
		{"token create", []string{"--tenant", "--user", "--permission"}},
		{"token list", nil},
		{"token revoke", []string{"<id-or-token>"}},
		{"migrate", []string{"migrate up", "migrate status"}},
		{"migrate up", nil},
		{"migrate status", nil},
		{"prune", []string{"--older-than", "HOOKFERRY_RETENTION"}},
		{"erase", []string{"--tenant", "--user"}},
		{"keys", []string{"keys generate", "keys rotate"}},
		{"keys generate", nil},
		{"keys rotate", nil},
		{"version", nil},
		{"help", []string{"[<command> ...]"}},
	} {
		t.Run(strings.ReplaceAll(tc.command, " ", "_"), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			args := strings.Fields(tc.command)
			forms := [][]string{append(append([]string{}, args...), "--help"), append(append([]string{}, args...), "-h"), append([]string{"help"}, args...)}
			for _, form := range forms {
				code, stdout, stderr := binary(t, dir, nil, form...)
				require.Equal(t, 0, code, "%v: %s", form, stderr)
				require.Contains(t, stdout, "Usage: hookferry "+tc.command, form)
				for _, name := range append(tc.names, storeFlagNames...) {
					require.Contains(t, stdout, name, "%v names %s", form, name)
				}
			}
			require.Empty(t, files(t, dir), "help creates nothing")
		})
	}
}

func TestVersionFlagAndCommand(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"--version"}, {"version"}} {
		code, stdout, stderr := binary(t, t.TempDir(), nil, args...)
		require.Equal(t, 0, code, stderr)
		require.Regexp(t, `^hookferry \S+\n$`, stdout, args)
	}
}

func TestUsageErrorsExit2WithOneLine(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"frobnicate"},
		{"token"},
		{"token", "frobnicate"},
		{"token", "create", "--tenant", "t", "--user", "u"},
		{"token", "revoke"},
		{"erase"},
		{"erase", "--tenant", " "},
		{"prune", "--older-than", "-1h"},
		{"prune", "--older-than", "soon"},
		{"--addr", ":0", "token", "list"}, // a serve flag given to another command
		{"help", "frobnicate"},
	} {
		dir := t.TempDir()
		code, stdout, stderr := binary(t, dir, keyEnv, args...)
		require.Equal(t, 2, code, "%v: %s", args, stderr)
		require.Empty(t, stdout, args)
		require.Equal(t, 1, strings.Count(stderr, "\n"), "%v: one line: %q", args, stderr)
		require.Regexp(t, `^hookferry`, stderr)
		require.Empty(t, files(t, dir), "%v creates nothing", args)
	}
}

func TestServeConfigurationSaysNo(t *testing.T) {
	t.Parallel()
	for _, env := range [][]string{
		{"HOOKFERRY_RATE_LIMIT=-1"},
		{"HOOKFERRY_RATE_LIMIT=fast"},
		{"HOOKFERRY_MAX_BATCH_BYTES=1000"},
		{"HOOKFERRY_RETENTION=-1h"},
		{"HOOKFERRY_RETENTION=a month"},
		{"HOOKFERRY_PRUNE_INTERVAL=0"},
		{"HOOKFERRY_MIGRATE=perhaps"},
		{"HOOKFERRY_LOG_LEVEL=loud"},
		{"HOOKFERRY_RETRY_SCHEDULE=5s,-1s"},
		{"HOOKFERRY_DELIVERY_LEASE=5s", "HOOKFERRY_DELIVERY_TIMEOUT=10s"},
		{"HOOKFERRY_DELIVERY_LEASE=15s", "HOOKFERRY_DELIVERY_TIMEOUT=10s"}, // an attempt could outlive it
		{"HOOKFERRY_DELIVERY_PER_TENANT=-1"},
		{"HOOKFERRY_DELIVERY_SLOW_AFTER=0"},
		{"HOOKFERRY_ENCRYPTION_KEYS=" + testKeys, "HOOKFERRY_ENCRYPTION_KEYS_FILE=/dev/null"},
		{"HOOKFERRY_ENCRYPTION_KEYS=not-a-key"},
		{"HOOKFERRY_EVENT_TYPES=missing.txt"}, // a file name, mistyped: not a one-type catalog
		{"HOOKFERRY_EVENT_TYPES=conf/missing"},
	} {
		dir := t.TempDir()
		code, _, stderr := binary(t, dir, env, "serve", "--addr", "127.0.0.1:0")
		require.Equal(t, 2, code, "%v: %s", env, stderr)
		require.Regexp(t, `^hookferry serve: .+\n$`, stderr, env)
		require.Empty(t, files(t, dir), "%v creates nothing", env)
	}
}

// TestServeRateLimit: HOOKFERRY_RATE_LIMIT reaches the API. At 1 request a
// second in bursts of 2, a tenant's first two requests pass and back-to-back
// ones soon meet 429 TOO_MANY_REQUESTS with Retry-After, while another tenant's
// requests still pass.
func TestServeRateLimit(t *testing.T) {
	t.Parallel()
	for _, be := range storetest.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			t.Parallel()
			db := be.URL(t)
			acme, _ := tokens(t, db)
			code, other, stderr := run(t, "token", "create", "--database-url", db, "--tenant", "globex", "--user", "carol", "--permission", "WEBHOOK_MANAGEMENT")
			require.Equal(t, 0, code, stderr)
			s := startServer(t, "HOOKFERRY_DATABASE_URL="+db, "HOOKFERRY_DELIVERY=false", "HOOKFERRY_RATE_LIMIT=1")
			defer s.terminate()
			c := client(t, s.url(), acme)
			limited := false
			for i := 1; i <= 50 && !limited; i++ {
				res, err := c.ListEventTypesWithResponse(context.Background())
				require.NoError(t, err)
				if i <= 2 || res.StatusCode() != http.StatusTooManyRequests {
					require.Equal(t, http.StatusOK, res.StatusCode(), "request %d: %s", i, res.Body)
					continue
				}
				limited = true
				require.Contains(t, string(res.Body), `"code":"TOO_MANY_REQUESTS"`)
				require.Equal(t, "1", res.HTTPResponse.Header.Get("Retry-After"))
			}
			require.True(t, limited, "50 requests at once never met a limit of 1 a second")
			res, err := client(t, s.url(), strings.TrimSpace(other)).ListEventTypesWithResponse(context.Background())
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, res.StatusCode(), "another tenant: %s", res.Body)
		})
	}
}

// TestServeMaxBatchBytes: HOOKFERRY_MAX_BATCH_BYTES reaches the API: a batch
// body of the limit is accepted, one byte more is 413 PAYLOAD_TOO_LARGE.
func TestServeMaxBatchBytes(t *testing.T) {
	t.Parallel()
	db := storetest.SQLiteURL(t)
	code, token, stderr := run(t, "token", "create", "--database-url", db, "--tenant", "acme", "--user", "p", "--permission", "EVENTS_PUBLISH")
	require.Equal(t, 0, code, stderr)
	const limit = 300_000
	s := startServer(t, "HOOKFERRY_DATABASE_URL="+db, "HOOKFERRY_DELIVERY=false", fmt.Sprintf("HOOKFERRY_MAX_BATCH_BYTES=%d", limit))
	defer s.terminate()
	c := client(t, s.url(), strings.TrimSpace(token))
	body := func(size int) string { // two events, each under the limit of one
		const head, mid, tail = `{"events":[{"type":"order.created","data":{"a":"`, `"}},{"type":"order.created","data":{"b":"`, `"}}]}`
		n := size - len(head) - len(mid) - len(tail)
		return head + strings.Repeat("x", n/2) + mid + strings.Repeat("y", n-n/2) + tail
	}
	res, err := c.PublishEventsWithBodyWithResponse(context.Background(), "application/json", strings.NewReader(body(limit)))
	require.NoError(t, err)
	require.Equal(t, http.StatusAccepted, res.StatusCode(), "%.300s", res.Body)
	res, err = c.PublishEventsWithBodyWithResponse(context.Background(), "application/json", strings.NewReader(body(limit+1)))
	require.NoError(t, err)
	require.Equal(t, http.StatusRequestEntityTooLarge, res.StatusCode(), "%.300s", res.Body)
	require.Contains(t, string(res.Body), fmt.Sprintf(`"code":"PAYLOAD_TOO_LARGE","message":"the request body is larger than %d bytes"`, limit))
}

// TestAPIOnlyIgnoresDeliverySettings: an instance that does not deliver does
// not judge the delivery settings.
func TestAPIOnlyIgnoresDeliverySettings(t *testing.T) {
	t.Parallel()
	db := storetest.SQLiteURL(t)
	s := startServer(t, "HOOKFERRY_DATABASE_URL="+db, "HOOKFERRY_DELIVERY=false",
		"HOOKFERRY_DELIVERY_LEASE=1s", "HOOKFERRY_DELIVERY_TIMEOUT=10s", "HOOKFERRY_DELIVERY_WORKERS=0")
	s.terminate()
	require.Contains(t, s.log(), `"delivery":false`)
}

func TestBadDatabaseURLExits2AndCreatesNothing(t *testing.T) {
	t.Parallel()
	commands := [][]string{
		{"serve", "--addr", "127.0.0.1:-1"}, // got past the URL, it stops at listening
		{"token", "create", "--tenant", "t", "--user", "u", "--permission", "EVENTS_PUBLISH"},
		{"token", "list"},
		{"token", "revoke", "tok_x"},
		{"migrate", "up"},
		{"migrate", "status"},
		{"prune"},
		{"erase", "--tenant", "t"},
		{"keys", "rotate"},
	}
	for _, bad := range []string{
		"host=x password=S3cret",
		"mysql://root:S3cret@db/hookferry",
		"postgres://u:S3cret%zz@db/hookferry",
		"postgres://u:S3cret%25@:port/hookferry",
		"postgres://u:S3cret@/hookferry",
		"sqlite:",
	} {
		for _, args := range commands {
			for _, viaFlag := range []bool{false, true} {
				dir := t.TempDir()
				env, line := []string{"HOOKFERRY_DATABASE_URL=" + bad}, args
				if viaFlag {
					env, line = nil, append(append([]string{}, args...), "--database-url", bad)
				}
				code, stdout, stderr := binary(t, dir, append(env, keyEnv...), line...)
				require.Equal(t, 2, code, "%s %v: %s", bad, args, stderr)
				require.Contains(t, stderr, "sqlite:PATH, file:PATH, postgres://… or postgresql://…", "names the accepted forms")
				require.Equal(t, 1, strings.Count(stderr, "\n"), "one line: %q", stderr)
				for _, out := range []string{stdout, stderr} {
					require.NotContains(t, out, "S3cret")
					require.NotContains(t, out, url.QueryEscape("S3cret"))
				}
				require.Empty(t, files(t, dir), "%s %v creates nothing", bad, args)
			}
		}
	}
}

func TestKeysGenerate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	seen := map[string]bool{}
	for range 3 {
		// A bad database URL does not matter: generating needs no database.
		code, stdout, stderr := binary(t, dir, []string{"HOOKFERRY_DATABASE_URL=mysql://x"}, "keys", "generate")
		require.Equal(t, 0, code, stderr)
		require.Regexp(t, `^[A-Za-z0-9+/]{43}=\n$`, stdout)
		_, err := keyring.Parse(stdout)
		require.NoError(t, err)
		require.False(t, seen[stdout], "a new key each time")
		seen[stdout] = true
	}
	require.Empty(t, files(t, dir))
}

// TestKeyFileBesideSQLiteDatabase: with no key configured, the first command
// makes hookferry.key (0600) beside the database; later ones use it.
func TestKeyFileBesideSQLiteDatabase(t *testing.T) {
	t.Parallel()
	dir, work := t.TempDir(), t.TempDir()
	db := "sqlite:" + filepath.Join(dir, "data.db")
	keyFile := filepath.Join(dir, "hookferry.key")
	code, token, stderr := binary(t, work, nil, "token", "create", "--database-url", db, "--tenant", "acme", "--user", "alice", "--permission", "WEBHOOK_MANAGEMENT")
	require.Equal(t, 0, code, stderr)
	require.Regexp(t, `^hf_\w+\n$`, token)
	require.Contains(t, stderr, "created the encryption key file "+keyFile)
	require.Contains(t, stderr, "back it up with the database")
	info, err := os.Stat(keyFile)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), info.Mode().Perm())
	key, err := os.ReadFile(keyFile)
	require.NoError(t, err)
	_, err = keyring.LoadFile(keyFile)
	require.NoError(t, err)
	require.Empty(t, files(t, work), "nothing in the working directory")

	code, _, stderr = binary(t, work, nil, "token", "list", "--database-url", db)
	require.Equal(t, 0, code, stderr)
	require.NotContains(t, stderr, "created")
	again, err := os.ReadFile(keyFile)
	require.NoError(t, err)
	require.Equal(t, key, again, "the key file is kept")
	for _, line := range strings.Split(strings.TrimSpace(string(key)), "\n") {
		if !strings.HasPrefix(line, "#") {
			require.NotContains(t, stderr, line, "never print the key")
		}
	}
}

// TestKeyFileCreatedOnceByConcurrentStarts: processes starting at once on a
// new SQLite database agree on one key.
func TestKeyFileCreatedOnceByConcurrentStarts(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := "sqlite:" + filepath.Join(dir, "hookferry.db")
	const n = 6
	var wg sync.WaitGroup
	stderrs := make([]string, n)
	codes := make([]int, n)
	for i := range n {
		wg.Go(func() { codes[i], _, stderrs[i] = binary(t, dir, nil, "keys", "rotate", "--database-url", db) })
	}
	wg.Wait()
	created := 0
	for i := range n {
		if strings.Contains(stderrs[i], "created the encryption key file") {
			created++
		}
		require.NotContains(t, stderrs[i], "create the key file", "no process failed to make it: %s", stderrs[i])
	}
	require.Equal(t, 1, created, "exactly one process made the key: %q", stderrs)
	matches, err := filepath.Glob(filepath.Join(dir, ".hookferry.key*"))
	require.NoError(t, err)
	require.Empty(t, matches, "no temporary key file is left behind")
}

// TestServeLogsKeyFileCreationOnce: serve says, once, that it made the key
// file and that it needs a backup, and never logs the key.
func TestServeLogsKeyFileCreationOnce(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := "sqlite:" + filepath.Join(dir, "hookferry.db")
	env := []string{"HOOKFERRY_DATABASE_URL=" + db, "HOOKFERRY_ENCRYPTION_KEYS="}
	s := startServer(t, env...)
	s.terminate()
	logs := s.log()
	require.Equal(t, 1, strings.Count(logs, "created the encryption key file"), logs)
	require.Contains(t, logs, "back it up with the database")
	key, err := os.ReadFile(filepath.Join(dir, "hookferry.key"))
	require.NoError(t, err)
	require.NotContains(t, logs, strings.TrimSpace(string(key[bytes.LastIndexByte(key[:len(key)-1], '\n')+1:])))

	s = startServer(t, env...)
	s.terminate()
	require.NotContains(t, s.log(), "created the encryption key file")
}

func TestPostgresWithoutKeyRefuses(t *testing.T) {
	t.Parallel()
	pg := "postgres://hookferry:S3cret@127.0.0.1:1/hookferry?sslmode=disable"
	for _, args := range [][]string{
		{"serve", "--addr", "127.0.0.1:0"},
		{"token", "list"},
		{"keys", "rotate"},
	} {
		dir := t.TempDir()
		code, _, stderr := binary(t, dir, []string{"HOOKFERRY_DATABASE_URL=" + pg}, args...)
		require.Equal(t, 2, code, "%v: %s", args, stderr)
		require.Contains(t, stderr, "hookferry keys generate")
		require.Contains(t, stderr, "HOOKFERRY_ENCRYPTION_KEYS")
		require.NotContains(t, stderr, "S3cret")
		require.Empty(t, files(t, dir))
	}
}

// TestServeNeverLogsThePassword starts serve on PostgreSQL through a URL that
// holds a password (ignored by a server that trusts local connections, else
// refused): whether it starts or not, no form of the password is printed.
func TestServeNeverLogsThePassword(t *testing.T) {
	t.Parallel()
	u, err := url.Parse(storetest.PostgresDatabase(t))
	require.NoError(t, err)
	u.User = url.UserPassword(u.User.Username(), "S3cret%/@:x")
	code, stdout, stderr := binary(t, t.TempDir(), append(keyEnv, "HOOKFERRY_DATABASE_URL="+u.String(), "HOOKFERRY_LOG_LEVEL=debug"),
		"serve", "--addr", "127.0.0.1:-1") // opens the database, then cannot listen
	require.NotEqual(t, 0, code)
	for _, out := range []string{stdout, stderr} {
		require.NotContains(t, out, "S3cret")
	}
}

// TestFlagsBeforeOrAfterTheCommand: the shared flags go on either side of
// the command name.
func TestFlagsBeforeOrAfterTheCommand(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := "sqlite:" + filepath.Join(dir, "x.db")
	for _, args := range [][]string{
		{"--database-url", db, "token", "create", "--tenant", "acme", "--user", "alice", "--permission", "EVENTS_PUBLISH"},
		{"token", "--database-url", db, "create", "--tenant", "acme", "--user", "bob", "--permission", "EVENTS_PUBLISH"},
		{"token", "create", "--tenant", "acme", "--user", "carol", "--permission", "EVENTS_PUBLISH", "--database-url", db},
	} {
		code, _, stderr := binary(t, dir, keyEnv, args...)
		require.Equal(t, 0, code, "%v: %s", args, stderr)
	}
	for _, args := range [][]string{
		{"--database-url", db, "token", "list"},
		{"token", "list", "--database-url", db},
		{"token", "list", "--database-url=" + db},
	} {
		code, stdout, stderr := binary(t, dir, keyEnv, args...)
		require.Equal(t, 0, code, "%v: %s", args, stderr)
		for _, user := range []string{"alice", "bob", "carol"} {
			require.Regexp(t, `(?m)^tok_\w+\s+acme\s+`+user+`\s`, stdout, args)
		}
	}
	require.NoFileExists(t, filepath.Join(dir, "hookferry.db"), "the default database was never used")

	// serve's own flags, too, before or after the (default) command.
	for _, args := range [][]string{
		{"--addr", "127.0.0.1:-1", "serve"},
		{"serve", "--addr", "127.0.0.1:-1"},
		{"--addr", "127.0.0.1:-1"},
	} {
		code, _, stderr := binary(t, dir, append(keyEnv, "HOOKFERRY_DATABASE_URL="+db), args...)
		require.Equal(t, 1, code, "%v reaches listen and fails there: %s", args, stderr)
		require.Contains(t, stderr, "listen tcp", "fails at listening, after the configuration was read")
	}
}

func TestPrune(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := "sqlite:" + filepath.Join(dir, "x.db")
	code, stdout, stderr := binary(t, dir, keyEnv, "prune", "--database-url", db, "--older-than", "1h")
	require.Equal(t, 0, code, stderr)
	require.Equal(t, "pruned 0 deliveries, 0 attempts, 0 events\n", stdout)
	seedWebhook(t, db)
	code, stdout, stderr = binary(t, dir, append(keyEnv, "HOOKFERRY_RETENTION=48h"), "prune", "--database-url", db)
	require.Equal(t, 0, code, stderr)
	require.Equal(t, "pruned 0 deliveries, 0 attempts, 0 events\n", stdout, "the delivery is younger than the retention")
	code, stdout, stderr = binary(t, dir, keyEnv, "prune", "--database-url", db, "--older-than", "1ns")
	require.Equal(t, 0, code, stderr)
	require.Equal(t, "pruned 1 deliveries, 0 attempts, 1 events\n", stdout, "delivered at the first attempt: the delivery is the log of it")

	code, stdout, stderr = binary(t, dir, append(keyEnv, "HOOKFERRY_RETENTION=0"), "prune", "--database-url", db)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "nothing pruned")
}

func TestErase(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := "sqlite:" + filepath.Join(dir, "x.db")
	for _, user := range []string{"alice", "bob"} {
		code, _, stderr := binary(t, dir, keyEnv, "token", "create", "--database-url", db, "--tenant", "acme", "--user", user, "--permission", "EVENTS_PUBLISH")
		require.Equal(t, 0, code, stderr)
	}
	code, stdout, stderr := binary(t, dir, keyEnv, "erase", "--database-url", db, "--tenant", "acme", "--user", "alice")
	require.Equal(t, 0, code, stderr)
	require.Equal(t, "erased 0 webhooks, 0 deliveries, 0 attempts, 1 tokens, 0 events\n", stdout)
	code, stdout, stderr = binary(t, dir, keyEnv, "erase", "--database-url", db, "--tenant", "acme")
	require.Equal(t, 0, code, stderr)
	require.Equal(t, "erased 0 webhooks, 0 deliveries, 0 attempts, 1 tokens, 0 events\n", stdout)
}

// TestKeysRotate: with the new key first and the old one after it, keys
// rotate re-seals the secret; then the new key alone opens the database.
func TestKeysRotate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := "sqlite:" + filepath.Join(dir, "x.db")
	w := seedWebhook(t, db)
	newKey, err := keyring.Generate(nil)
	require.NoError(t, err)
	code, stdout, stderr := binary(t, dir, []string{"HOOKFERRY_ENCRYPTION_KEYS=" + newKey + "," + testKeys}, "keys", "rotate", "--database-url", db)
	require.Equal(t, 0, code, stderr)
	require.Equal(t, "re-encrypted 1 secrets under the first key\n", stdout)
	code, stdout, stderr = binary(t, dir, []string{"HOOKFERRY_ENCRYPTION_KEYS=" + newKey + "," + testKeys}, "keys", "rotate", "--database-url", db)
	require.Equal(t, 0, code, stderr)
	require.Equal(t, "re-encrypted 0 secrets under the first key\n", stdout)

	code, _, stderr = binary(t, dir, keyEnv, "token", "list", "--database-url", db)
	require.Equal(t, 1, code, "the old key alone no longer opens the secrets")
	require.Contains(t, stderr, "cannot open the signing secrets")
	k, err := keyring.Parse(newKey)
	require.NoError(t, err)
	st, err := store.Open(context.Background(), db, store.Options{Keys: k})
	require.NoError(t, err)
	defer st.Close()
	got, err := st.GetWebhook(context.Background(), w.Owner, w.ID)
	require.NoError(t, err)
	require.Equal(t, w.Secret, got.Secret)
}

// seedWebhook registers a webhook under the tests' key and delivers one event
// to it, through the store.
func seedWebhook(t *testing.T, db string) webhook.Webhook {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, db, store.Options{Keys: storetest.Keys()})
	require.NoError(t, err)
	defer st.Close()
	w, err := webhook.New(webhook.Owner{TenantID: "acme", UserID: "alice"}, "https://example.com/h", "https://example.com/h",
		[]string{"order.created"}, webhook.SigningSymmetric, time.Now(), nil)
	require.NoError(t, err)
	require.NoError(t, st.RegisterWebhook(ctx, w, 25))
	_, err = st.Publish(ctx, store.Event{TenantID: "acme", Type: "order.created", Data: []byte(`{}`)})
	require.NoError(t, err)
	claims, err := st.Claim(ctx, store.ClaimRequest{Limit: 10, Lease: time.Minute})
	require.NoError(t, err)
	require.Len(t, claims, 1)
	_, err = st.Record(ctx, []store.Result{{DeliveryID: claims[0].DeliveryID, ClaimSeq: claims[0].ClaimSeq, WebhookID: w.ID,
		Status: store.StatusDelivered, Attempted: true, AttemptedAt: time.Now(), StatusCode: 204}}, 0)
	require.NoError(t, err)
	return w
}

func TestMigrateUpAndStatus(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := "sqlite:" + filepath.Join(dir, "x.db")
	code, stdout, stderr := binary(t, dir, keyEnv, "migrate", "up", "--database-url", db)
	require.Equal(t, 0, code, stderr)
	require.Regexp(t, `^applied \d+ migrations: \d+(, \d+)*\n$`, stdout)
	code, stdout, stderr = binary(t, dir, keyEnv, "migrate", "up", "--database-url", db)
	require.Equal(t, 0, code, stderr)
	require.Equal(t, "no pending migrations: the schema is up to date\n", stdout)

	code, stdout, stderr = binary(t, dir, nil, "migrate", "status", "--database-url", db)
	require.Equal(t, 0, code, stderr)
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	require.Regexp(t, `^schema version (\d+) of (\d+) \(up to date\)$`, lines[0])
	m := regexp.MustCompile(`(\d+) of (\d+)`).FindStringSubmatch(lines[0])
	require.Equal(t, m[1], m[2])
	require.Regexp(t, `^VERSION\s+NAME\s+APPLIED$`, lines[1])
	require.Greater(t, len(lines), 2)
	for _, line := range lines[2:] {
		require.Regexp(t, `^\d+\s+\S+\s+\d{4}-\d\d-\d\dT\S+Z$`, line)
	}
}

// TestMigrateFalseRefusesABehindSchema: HOOKFERRY_MIGRATE=false does not
// create or upgrade a schema.
func TestMigrateFalseRefusesABehindSchema(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := "sqlite:" + filepath.Join(dir, "x.db")
	code, _, stderr := binary(t, dir, append(keyEnv, "HOOKFERRY_MIGRATE=false"), "token", "list", "--database-url", db)
	require.Equal(t, 1, code, stderr)
	code, _, stderr = binary(t, dir, keyEnv, "token", "list", "--no-migrate", "--database-url", db)
	require.Equal(t, 1, code, stderr)
	code, _, stderr = binary(t, dir, append(keyEnv, "HOOKFERRY_MIGRATE=false"), "migrate", "up", "--database-url", db)
	require.Equal(t, 0, code, "migrate up migrates whatever HOOKFERRY_MIGRATE says: %s", stderr)
	code, _, stderr = binary(t, dir, append(keyEnv, "HOOKFERRY_MIGRATE=false"), "token", "list", "--database-url", db)
	require.Equal(t, 0, code, stderr)
}

// TestStartUpLine: serve says in one line where its database is, whether it
// delivers, whether private targets are allowed, its version and the
// migrations it applied; and, with no token yet, how to make the first.
func TestStartUpLine(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := startServer(t, "HOOKFERRY_DATABASE_URL=sqlite:"+filepath.Join(dir, "hookferry.db"), "HOOKFERRY_ALLOW_PRIVATE_TARGETS=true")
	s.terminate()
	logs := s.log()
	require.Regexp(t, `"msg":"hookferry listening","addr":"[^"]+","database":"sqlite `+regexp.QuoteMeta(filepath.Join(dir, "hookferry.db"))+
		`","delivery":true,"allow_private_targets":true,"version":"[^"]+","migrations_applied":\[\d+(,\d+)*\]`, logs)
	require.Contains(t, logs, "hookferry token create --tenant T --user U --permission WEBHOOK_MANAGEMENT")

	_, _, _ = binary(t, dir, nil, "token", "create", "--database-url", "sqlite:"+filepath.Join(dir, "hookferry.db"), "--tenant", "a", "--user", "b", "--permission", "EVENTS_PUBLISH")
	s = startServer(t, "HOOKFERRY_DATABASE_URL=sqlite:"+filepath.Join(dir, "hookferry.db"))
	s.terminate()
	require.Regexp(t, `"migrations_applied":\[\]`, s.log(), "nothing left to apply")
	require.NotContains(t, s.log(), "hookferry token create", "a token exists")
}
