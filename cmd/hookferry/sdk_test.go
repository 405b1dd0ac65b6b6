package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	hookferry "github.com/hookferry/hookferry/clients/go"
	"github.com/hookferry/hookferry/store/storetest"
	"github.com/stretchr/testify/require"
)

// TestSDKVerifiesRealDeliveries: the Go SDK's receiver verifier accepts what a
// real hookferry sends, SYMMETRIC (v1) and ASYMMETRIC (v1a), and after a
// rotation accepts each delivery with the old key alone and with the new key
// alone, as the overlap promises; a key of the other webhook verifies nothing.
func TestSDKVerifiesRealDeliveries(t *testing.T) {
	t.Parallel()
	for _, be := range storetest.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			db := be.URL(t)
			type arrival struct {
				path   string
				header http.Header
				body   []byte
			}
			arrivals := make(chan arrival, 10)
			recv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, err := io.ReadAll(r.Body)
				if err != nil {
					w.WriteHeader(http.StatusBadRequest)
					return
				}
				arrivals <- arrival{r.URL.Path, r.Header.Clone(), body}
				w.WriteHeader(http.StatusNoContent)
			}))
			t.Cleanup(recv.Close)
			s := startServer(t, "HOOKFERRY_DATABASE_URL="+db, "HOOKFERRY_ALLOW_PRIVATE_TARGETS=true", "HOOKFERRY_DELIVERY_CA_FILE="+writeCA(t, recv))
			manage, publish := tokens(t, db)
			c, producer := client(t, s.url(), manage), client(t, s.url(), publish)

			register := func(path string, signing hookferry.Signing) hookferry.Webhook {
				res, err := c.RegisterWebhookWithResponse(ctx, hookferry.RegisterWebhookJSONRequestBody{
					Url: recv.URL + path, Subscription: hookferry.Subscription{EventTypes: []string{"order.created"}}, Signing: &signing,
				})
				require.NoError(t, err)
				require.Equal(t, http.StatusCreated, res.StatusCode(), "%s", res.Body)
				return *res.JSON201
			}
			sym, asym := register("/sym", hookferry.SigningSYMMETRIC), register("/asym", hookferry.SigningASYMMETRIC)
			require.True(t, strings.HasPrefix(sym.Authentication.Secret, "whsec_"))
			require.True(t, strings.HasPrefix(asym.Authentication.Secret, "whpk_"), "an ASYMMETRIC webhook shows its public key")

			// publish sends one event and returns its delivery to each webhook, by path.
			publishOne := func(id string) map[string]arrival {
				res, err := producer.PublishEventWithResponse(ctx, hookferry.PublishEventJSONRequestBody{
					Type: "order.created", Id: &id, Data: []byte(`{"order":"` + id + `"}`),
				})
				require.NoError(t, err)
				require.Equal(t, http.StatusAccepted, res.StatusCode(), "%s", res.Body)
				got := map[string]arrival{}
				for len(got) < 2 {
					select {
					case a := <-arrivals:
						require.Equal(t, res.JSON202.Id, a.header.Get("webhook-id"))
						got[a.path] = a
					case <-time.After(30 * time.Second):
						t.Fatalf("deliveries of %s missing; have %d; logs:\n%s", id, len(got), s.log())
					}
				}
				return got
			}
			verify := func(a arrival, keys ...string) error {
				_, err := mustVerifier(t, keys...).Verify(a.header, a.body)
				return err
			}

			got := publishOne("before-rotation")
			env, err := mustVerifier(t, sym.Authentication.Secret).Verify(got["/sym"].header, got["/sym"].body)
			require.NoError(t, err)
			require.Equal(t, "order.created", env.Type)
			require.JSONEq(t, `{"order":"before-rotation"}`, string(env.Data))
			require.NoError(t, verify(got["/asym"], asym.Authentication.Secret))
			require.True(t, strings.HasPrefix(got["/asym"].header.Get("webhook-signature"), "v1a,"), got["/asym"].header.Get("webhook-signature"))
			require.ErrorIs(t, verify(got["/sym"], asym.Authentication.Secret), hookferry.ErrNoMatchingSignature)
			require.ErrorIs(t, verify(got["/asym"], sym.Authentication.Secret), hookferry.ErrNoMatchingSignature)

			rotate := func(w hookferry.Webhook) string {
				res, err := c.RotateWebhookSecretWithResponse(ctx, w.Id, hookferry.RotateWebhookSecretJSONRequestBody{})
				require.NoError(t, err)
				require.Equal(t, http.StatusOK, res.StatusCode(), "%s", res.Body)
				require.NotNil(t, res.JSON200.Authentication)
				require.NotEqual(t, w.Authentication.Secret, res.JSON200.Authentication.Secret)
				return res.JSON200.Authentication.Secret
			}
			newSym, newAsym := rotate(sym), rotate(asym)

			got = publishOne("after-rotation")
			for path, keys := range map[string][2]string{"/sym": {sym.Authentication.Secret, newSym}, "/asym": {asym.Authentication.Secret, newAsym}} {
				a := got[path]
				require.Len(t, strings.Fields(a.header.Get("webhook-signature")), 2, "%s: one signature per valid key", path)
				require.NoError(t, verify(a, keys[0]), "%s with the old key", path)
				require.NoError(t, verify(a, keys[1]), "%s with the new key", path)
			}
			require.ErrorIs(t, verify(got["/sym"], newAsym, asym.Authentication.Secret), hookferry.ErrNoMatchingSignature)
		})
	}
}

func mustVerifier(t *testing.T, keys ...string) *hookferry.Verifier {
	t.Helper()
	v, err := hookferry.NewVerifier(keys...)
	require.NoError(t, err)
	return v
}
