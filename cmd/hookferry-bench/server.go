package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hookferry/hookferry/keyring"
	"github.com/jackc/pgx/v5"
)

// Server is the hookferry child process under test.
type Server struct {
	Addr   string // 127.0.0.1:PORT
	binary string
	env    []string
	cmd    *exec.Cmd
	exited chan struct{}
	err    error // of the process, once exited is closed
}

// serverEnv is the environment of every hookferry command of the bench: the
// bench's own, minus what the bench decides, plus what it decides. Other
// HOOKFERRY_ variables (HOOKFERRY_DELIVERY_WORKERS, …) pass through, so that
// they can be tried without editing anything; passed lists them. defaults are
// set unless the bench's environment sets them.
func serverEnv(databaseURL, caFile string, webhooksPerUser int, defaults map[string]string) (env, passed []string) {
	set := map[string]string{
		"HOOKFERRY_DATABASE_URL":          databaseURL,
		"HOOKFERRY_ALLOW_PRIVATE_TARGETS": "true",
		"HOOKFERRY_LOG_LEVEL":             "warn",
		"HOOKFERRY_DELIVERY_CA_FILE":      caFile,
	}
	if webhooksPerUser > 25 {
		set["HOOKFERRY_MAX_WEBHOOKS_PER_USER"] = fmt.Sprint(webhooksPerUser)
	}
	for k, v := range defaults {
		if _, given := os.LookupEnv(k); !given {
			set[k] = v
		}
	}
	// PostgreSQL needs a key (SQLite would make a file): one per run, unless
	// the bench was given keys.
	_, keys := os.LookupEnv("HOOKFERRY_ENCRYPTION_KEYS")
	_, keysFile := os.LookupEnv("HOOKFERRY_ENCRYPTION_KEYS_FILE")
	if !keys && !keysFile {
		if key, err := keyring.Generate(nil); err == nil {
			set["HOOKFERRY_ENCRYPTION_KEYS"] = key
		}
	}
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if _, ours := set[k]; ours || k == "HOOKFERRY_ADDR" {
			continue
		}
		env = append(env, kv)
		if strings.HasPrefix(k, "HOOKFERRY_") {
			passed = append(passed, kv)
		}
	}
	for k, v := range set {
		env = append(env, k+"="+v)
	}
	return env, passed
}

// startServer runs `hookferry serve` on a free loopback port and waits until
// GET /readyz answers 200 (the schema is migrated by then).
func startServer(ctx context.Context, binary string, env []string) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &Server{Addr: fmt.Sprintf("127.0.0.1:%d", port), binary: binary, env: env, exited: make(chan struct{})}
	s.cmd = exec.Command(binary, "serve", "--addr", s.Addr)
	s.cmd.Env = env
	s.cmd.Stdout = os.Stderr
	s.cmd.Stderr = os.Stderr
	// Its own process group (a ^C reaches the bench, which stops it in order);
	// killed if the bench dies.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", binary, err)
	}
	go func() {
		s.err = s.cmd.Wait()
		close(s.exited)
	}()
	if err := s.waitReady(ctx, 30*time.Second); err != nil {
		s.stop(5 * time.Second)
		return nil, err
	}
	return s, nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func (s *Server) waitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.Addr+"/readyz", nil)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-s.exited:
			return fmt.Errorf("hookferry serve exited before it was ready: %v", s.err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("hookferry serve not ready at %s after %s", s.Addr, timeout)
		}
	}
}

// createToken runs `hookferry token create` with the server's environment and
// returns the token it prints.
func (s *Server) createToken(ctx context.Context, tenant, user string, perms ...string) (string, error) {
	args := []string{"token", "create", "--tenant", tenant, "--user", user}
	for _, p := range perms {
		args = append(args, "--permission", p)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.binary, args...)
	cmd.Env = s.env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("hookferry token create: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	token := strings.TrimSpace(stdout.String())
	if token == "" || strings.ContainsAny(token, " \n") {
		return "", fmt.Errorf("hookferry token create printed %q, not one token", stdout.String())
	}
	return token, nil
}

// metric reads one unlabelled sample of GET /metrics, such as
// hookferry_deliveries_in_flight.
func (s *Server) metric(ctx context.Context, name string) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.Addr+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(rest), 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("GET /metrics has no %s", name)
}

// pid is the server's process id.
func (s *Server) pid() int { return s.cmd.Process.Pid }

// stop sends SIGTERM and waits up to grace, then kills.
func (s *Server) stop(grace time.Duration) error {
	select {
	case <-s.exited:
		return fmt.Errorf("hookferry serve had already exited: %v", s.err)
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
		return s.err
	case <-time.After(grace):
		_ = s.cmd.Process.Kill()
		<-s.exited
		return fmt.Errorf("hookferry serve did not stop within %s of SIGTERM; killed", grace)
	}
}

// Database is where the server under test keeps its state.
type Database struct {
	URL  string
	drop func() error
}

// openDatabase makes a fresh database: a SQLite file in dir, or a PostgreSQL
// database hfbench_<random> on the server of baseURL, dropped by close.
func openDatabase(ctx context.Context, kind, dir, baseURL string) (*Database, error) {
	switch kind {
	case "sqlite":
		return &Database{URL: "sqlite:" + dir + "/hookferry.db", drop: func() error { return nil }}, nil
	case "postgres":
	default:
		return nil, fmt.Errorf("--db must be sqlite or postgres, not %q", kind)
	}
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return nil, fmt.Errorf("--postgres-url %q is not a postgres:// URL", baseURL)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "hfbench_" + hex.EncodeToString(b[:])
	admin := func(ctx context.Context, stmt string) error {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, baseURL)
		if err != nil {
			return err
		}
		defer conn.Close(context.WithoutCancel(ctx))
		_, err = conn.Exec(ctx, stmt)
		return err
	}
	if err := admin(ctx, "CREATE DATABASE "+name); err != nil {
		return nil, fmt.Errorf("create database %s on %s: %w", name, u.Redacted(), err)
	}
	db := *u
	db.Path = "/" + name
	return &Database{URL: db.String(), drop: func() error {
		if err := admin(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			return fmt.Errorf("drop database %s: %w", name, err)
		}
		return nil
	}}, nil
}

func (d *Database) close() error {
	if d == nil || d.drop == nil {
		return nil
	}
	return d.drop()
}
