package gen_test

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"

	"github.com/hookferry/hookferry/auth"
	"github.com/hookferry/hookferry/delivery"
	"github.com/hookferry/hookferry/gen"
	"github.com/hookferry/hookferry/server"
	"github.com/hookferry/hookferry/store"
	"github.com/hookferry/hookferry/store/storetest"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// Example registers a webhook, publishes an event and verifies its delivery
// with the Standard Webhooks reference verifier, all through the generated
// client. The hookferry it talks to runs in-process here; against a deployed
// one, only the base URL and the tokens change.
func Example() {
	ctx := context.Background()
	baseURL, manageToken, publishToken, received, stop := startHookferry()
	defer stop()

	// A client is the base URL and a bearer token.
	bearer := func(token string) gen.ClientOption {
		return gen.WithRequestEditorFn(func(_ context.Context, req *http.Request) error {
			req.Header.Set("Authorization", "Bearer "+token)
			return nil
		})
	}
	users, err := gen.NewClientWithResponses(baseURL, bearer(manageToken))
	if err != nil {
		panic(err)
	}
	producer, err := gen.NewClientWithResponses(baseURL, bearer(publishToken))
	if err != nil {
		panic(err)
	}

	receiverURL := <-received.url
	reg, err := users.RegisterWebhookWithResponse(ctx, gen.RegisterWebhookJSONRequestBody{
		Url:          receiverURL + "/hooks/orders",
		Subscription: gen.Subscription{EventTypes: []string{"order.created"}},
	})
	if err != nil || reg.JSON201 == nil {
		panic(fmt.Sprint(err, reg.Status()))
	}
	fmt.Println("registered:", reg.JSON201.Status)
	secret := reg.JSON201.Authentication.Secret // shown once here; later with show_authentication=true

	pub, err := producer.PublishEventWithResponse(ctx, gen.PublishEventJSONRequestBody{
		Type: "order.created",
		Id:   ptr("order-1042-created"), // repeating it publishes nothing new
		Data: json.RawMessage(`{"order_id":"1042","total":99.5}`),
	})
	if err != nil || pub.JSON202 == nil {
		panic(fmt.Sprint(err, pub.Status()))
	}
	fmt.Println("published to", pub.JSON202.Deliveries, "webhook")

	// What the receiver does with each request: verify, then trust.
	req := <-received.requests
	verifier, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		panic(err)
	}
	if err := verifier.Verify(req.body, req.header); err != nil {
		panic(err)
	}
	var envelope struct {
		Type string          `json:"type"`
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(req.body, &envelope); err != nil {
		panic(err)
	}
	fmt.Println("verified:", envelope.Type, string(envelope.Data))
	// Output:
	// registered: ACTIVE
	// published to 1 webhook
	// verified: order.created {"order_id":"1042","total":99.5}
}

func ptr[T any](v T) *T { return &v }

type request struct {
	header http.Header
	body   []byte
}

type receiver struct {
	url      chan string
	requests chan request
}

// startHookferry runs hookferry (SQLite in a temporary directory, delivery
// workers, private targets allowed for the local receiver) and an HTTPS
// receiver that hands over what it receives.
func startHookferry() (baseURL, manageToken, publishToken string, rcv receiver, stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	dir, err := os.MkdirTemp("", "hookferry-example")
	if err != nil {
		panic(err)
	}
	rcv = receiver{url: make(chan string, 1), requests: make(chan request, 10)}
	tlsReceiver := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rcv.requests <- request{header: r.Header.Clone(), body: body}
		w.WriteHeader(http.StatusNoContent)
	}))
	rcv.url <- tlsReceiver.URL

	st, err := store.Open(ctx, "sqlite:"+filepath.Join(dir, "hookferry.db"), store.Options{Keys: storetest.Keys()})
	if err != nil {
		panic(err)
	}
	_, manageToken, _ = st.CreateToken(ctx, "acme", "alice", []auth.Permission{auth.PermissionWebhookManagement})
	_, publishToken, _ = st.CreateToken(ctx, "acme", "shop", []auth.Permission{auth.PermissionEventsPublish})
	srv, err := server.New(st, server.Config{AllowPrivateTargets: true})
	if err != nil {
		panic(err)
	}
	api := httptest.NewServer(srv.Handler())
	roots := x509.NewCertPool()
	roots.AddCert(tlsReceiver.Certificate())
	sender, err := delivery.NewSender(delivery.SenderConfig{AllowPrivate: true, RootCAs: roots})
	if err != nil {
		panic(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = delivery.New(st, sender, delivery.Config{}).Run(ctx)
	}()
	return api.URL, manageToken, publishToken, rcv, func() {
		cancel()
		<-done
		api.Close()
		tlsReceiver.Close()
		_ = st.Close()
		_ = os.RemoveAll(dir)
	}
}
