package hookferry_test

import (
	"bufio"
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	hookferry "github.com/hookferry/hookferry/clients/go"
)

// Example registers a webhook, publishes an event and verifies its delivery,
// all through this package, against a real hookferry: the binary built from
// this repository, serving a temporary SQLite database. Against a deployed
// hookferry, only the base URL and the tokens change.
func Example() {
	ctx := context.Background()
	hf, err := startHookferry()
	if err != nil {
		panic(err)
	}
	defer hf.stop()

	// A client is the base URL and a bearer token.
	bearer := func(token string) hookferry.ClientOption {
		return hookferry.WithRequestEditorFn(func(_ context.Context, req *http.Request) error {
			req.Header.Set("Authorization", "Bearer "+token)
			return nil
		})
	}
	users, err := hookferry.NewClientWithResponses(hf.baseURL, bearer(hf.manageToken))
	if err != nil {
		panic(err)
	}
	producer, err := hookferry.NewClientWithResponses(hf.baseURL, bearer(hf.publishToken))
	if err != nil {
		panic(err)
	}

	reg, err := users.RegisterWebhookWithResponse(ctx, hookferry.RegisterWebhookJSONRequestBody{
		Url:          hf.receiver.URL + "/hooks/orders",
		Subscription: hookferry.Subscription{EventTypes: []string{"order.created"}},
	})
	if err != nil || reg.JSON201 == nil {
		panic(fmt.Sprint(err, reg.Status(), string(reg.Body)))
	}
	fmt.Println("registered:", reg.JSON201.Status)
	// Shown once here; later with show_authentication=true.
	verifier, err := hookferry.NewVerifier(reg.JSON201.Authentication.Secret)
	if err != nil {
		panic(err)
	}

	id := "order-1042-created" // repeating it publishes nothing new
	pub, err := producer.PublishEventWithResponse(ctx, hookferry.PublishEventJSONRequestBody{
		Type: "order.created",
		Id:   &id,
		Data: json.RawMessage(`{"order_id":"1042","total":99.5}`),
	})
	if err != nil || pub.JSON202 == nil {
		panic(fmt.Sprint(err, pub.Status(), string(pub.Body)))
	}
	fmt.Println("published to", pub.JSON202.Deliveries, "webhook")

	// What the receiver does with each request: verify, then trust.
	var req delivered
	select {
	case req = <-hf.delivered:
	case <-time.After(time.Minute):
		panic("no delivery within a minute")
	}
	env, err := verifier.Verify(req.header, req.body)
	if err != nil {
		panic(err)
	}
	fmt.Println("verified:", env.Type, string(env.Data))
	// Output:
	// registered: ACTIVE
	// published to 1 webhook
	// verified: order.created {"order_id":"1042","total":99.5}
}

// ExampleVerifier is a receiver's handler: verify, decode, act, answer 2xx.
// Pass every key that may sign: during a rotation the old and the new one.
func ExampleVerifier() {
	verifier, err := hookferry.NewVerifier(os.Getenv("HOOKFERRY_WEBHOOK_SECRET"))
	if err != nil {
		panic(err)
	}
	http.HandleFunc("POST /hooks/orders", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		if err != nil {
			http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
			return
		}
		env, err := verifier.Verify(r.Header, body)
		if err != nil {
			// Never act on an unverified body; the error names no secret.
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		// env.ID is the same on every attempt: use it to drop repeats.
		fmt.Println(env.ID, env.Type, string(env.Data))
		w.WriteHeader(http.StatusNoContent)
	})
}

type delivered struct {
	header http.Header
	body   []byte
}

// hookferryProcess is `hookferry serve` as a child process and the HTTPS
// receiver it delivers to.
type hookferryProcess struct {
	baseURL, manageToken, publishToken string
	receiver                           *httptest.Server
	delivered                          chan delivered
	stop                               func()
}

// startHookferry builds cmd/hookferry from the repository this module sits in
// (../..), then runs `hookferry serve` on a free port and a fresh SQLite
// database, trusting the certificate of an HTTPS receiver on 127.0.0.1 that
// hands over every request it gets.
func startHookferry() (_ *hookferryProcess, err error) {
	dir, err := os.MkdirTemp("", "hookferry-sdk-example")
	if err != nil {
		return nil, err
	}
	hf := &hookferryProcess{delivered: make(chan delivered, 10)}
	var cleanups []func()
	hf.stop = func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
		_ = os.RemoveAll(dir)
	}
	defer func() {
		if err != nil {
			hf.stop()
		}
	}()

	bin := filepath.Join(dir, "hookferry")
	build := exec.Command("go", "build", "-o", bin, "./cmd/hookferry")
	build.Dir = filepath.Join("..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build ./cmd/hookferry in the repository root: %v\n%s", err, out)
	}

	hf.receiver = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		hf.delivered <- delivered{header: r.Header.Clone(), body: body}
		w.WriteHeader(http.StatusNoContent)
	}))
	cleanups = append(cleanups, hf.receiver.Close)
	caFile := filepath.Join(dir, "receiver-ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: hf.receiver.Certificate().Raw}), 0o600); err != nil {
		return nil, err
	}

	// Only these settings: none inherited from the environment the test runs in.
	env := []string{
		"HOOKFERRY_DATABASE_URL=sqlite:" + filepath.Join(dir, "hookferry.db"),
		"HOOKFERRY_ALLOW_PRIVATE_TARGETS=true",
		"HOOKFERRY_DELIVERY_CA_FILE=" + caFile,
	}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HOOKFERRY_") {
			env = append(env, kv)
		}
	}
	token := func(user, permission string) (string, error) {
		cmd := exec.Command(bin, "token", "create", "--tenant", "acme", "--user", user, "--permission", permission)
		cmd.Env, cmd.Dir = env, dir
		out, err := cmd.Output()
		if err != nil {
			var exit *exec.ExitError
			if errors.As(err, &exit) {
				return "", fmt.Errorf("hookferry token create: %v\n%s", err, exit.Stderr)
			}
			return "", fmt.Errorf("hookferry token create: %v", err)
		}
		return strings.TrimSpace(string(out)), nil
	}
	// Tokens first: token create migrates the database, so serve finds it ready.
	if hf.manageToken, err = token("alice", "WEBHOOK_MANAGEMENT"); err != nil {
		return nil, err
	}
	if hf.publishToken, err = token("shop", "EVENTS_PUBLISH"); err != nil {
		return nil, err
	}

	serve := exec.Command(bin, "serve", "--addr", "127.0.0.1:0", "--log-format", "json")
	serve.Env, serve.Dir = env, dir
	stderr, err := serve.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := serve.Start(); err != nil {
		return nil, err
	}
	exited := make(chan struct{})
	cleanups = append(cleanups, func() {
		_ = serve.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = serve.Process.Kill()
			<-exited
		}
	})
	// The address comes from the "hookferry listening" log line.
	addr := make(chan string, 1)
	var logs strings.Builder
	go func() {
		defer close(exited)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var line struct{ Msg, Addr string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "hookferry listening" {
				addr <- line.Addr
			} else if len(addr) == 0 && logs.Len() < 1<<16 {
				logs.WriteString(sc.Text() + "\n")
			}
		}
		_ = serve.Wait()
	}()
	select {
	case a := <-addr:
		hf.baseURL = "http://" + a
	case <-exited:
		return nil, fmt.Errorf("hookferry serve exited before listening:\n%s", logs.String())
	case <-time.After(time.Minute):
		return nil, errors.New("hookferry serve did not listen within a minute")
	}
	return hf, nil
}
