package server_test

import (
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hookferry/hookferry/auth"
	hookferry "github.com/hookferry/hookferry/clients/go"
	"github.com/hookferry/hookferry/delivery"
	"github.com/hookferry/hookferry/server"
	"github.com/hookferry/hookferry/store/storetest"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/require"
)

// rotate rotates w's secret with body ("" for none) and requires 200.
func (e *env) rotate(c *hookferry.ClientWithResponses, id, body string) hookferry.Webhook {
	e.t.Helper()
	res := e.rotateRaw(c, id, body)
	require.Equal(e.t, http.StatusOK, res.StatusCode(), "rotate %s: %s", body, res.Body)
	require.NotContains(e.t, string(res.Body), "whsk_", "a private key in an answer")
	return *res.JSON200
}

func (e *env) rotateRaw(c *hookferry.ClientWithResponses, id, body string) *hookferry.RotateWebhookSecretResponse {
	e.t.Helper()
	contentType := "application/json"
	if body == "" {
		contentType = ""
	}
	res, err := c.RotateWebhookSecretWithBodyWithResponse(ctx, id, contentType, strings.NewReader(body))
	require.NoError(e.t, err)
	return res
}

// verifies reports whether the reference verifier accepts got with secret.
func verifies(t *testing.T, secret string, got receivedRequest) bool {
	t.Helper()
	v, err := standardwebhooks.NewWebhook(secret)
	require.NoError(t, err)
	return v.Verify(got.body, got.header) == nil
}

// verifiesV1a reports whether one of got's v1a signatures verifies with the
// public key whpk_… exactly as the spec describes: ed25519 over
// "id.timestamp.body".
func verifiesV1a(t *testing.T, publicKey string, got receivedRequest) bool {
	t.Helper()
	encoded, ok := strings.CutPrefix(publicKey, "whpk_")
	require.True(t, ok, "not a public key: %s", publicKey)
	public, err := base64.StdEncoding.DecodeString(encoded)
	require.NoError(t, err)
	require.Len(t, public, ed25519.PublicKeySize)
	content := got.header.Get("webhook-id") + "." + got.header.Get("webhook-timestamp") + "." + string(got.body)
	for _, sig := range strings.Fields(got.header.Get("webhook-signature")) {
		raw, ok := strings.CutPrefix(sig, "v1a,")
		if !ok {
			continue
		}
		b, err := base64.StdEncoding.DecodeString(raw)
		require.NoError(t, err)
		if ed25519.Verify(public, []byte(content), b) {
			return true
		}
	}
	return false
}

// signatures lists the versions of got's signatures, in order.
func signatures(got receivedRequest) []string {
	var out []string
	for _, sig := range strings.Fields(got.header.Get("webhook-signature")) {
		version, _, _ := strings.Cut(sig, ",")
		out = append(out, version)
	}
	return out
}

// settled waits until webhook id has no delivery pending: every result is
// written.
func (e *env) settled(id string) {
	e.t.Helper()
	require.Eventually(e.t, func() bool { return e.getWebhook(e.alice, id).BufferedEvents == 0 }, 30*time.Second, 5*time.Millisecond)
}

// rotationEnv is an API with a dispatcher on the API's clock, so that a test
// moves past a previous key's expiry by advancing the clock.
func rotationEnv(t *testing.T, be storetest.Backend) (*env, *receiver, *hookferry.ClientWithResponses) {
	e := setup(t, be, func(c *server.Config) { c.AllowPrivateTargets = true })
	rcv := newReceiver(t)
	e.runDispatcher(rcv, delivery.Config{Now: e.clock.Now})
	return e, rcv, e.publisher("acme")
}

func TestRotateSecretOverlap(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, be storetest.Backend) {
		e, rcv, pub := rotationEnv(t, be)
		w := e.register(e.alice, rcv.srv.URL+"/hooks")
		require.Equal(t, hookferry.SigningSYMMETRIC, w.Signing)
		old := w.Authentication.Secret

		e.publish(pub, event("order.created", `{"n":0}`))
		got := rcv.next(t)
		require.True(t, verifies(t, old, got))
		require.Equal(t, []string{"v1"}, signatures(got))

		e.settled(w.Id)
		e.clock.Advance(time.Minute)
		rotatedAt := e.clock.Now()
		r := e.rotate(e.alice, w.Id, `{"previous_secret_ttl_seconds":3600}`)
		require.NotNil(t, r.Authentication)
		current := r.Authentication.Secret
		require.True(t, strings.HasPrefix(current, "whsec_"), current)
		require.NotEqual(t, old, current)
		require.Equal(t, hookferry.SigningSYMMETRIC, r.Signing)
		require.NotNil(t, r.PreviousSecretExpiresAt)
		require.Equal(t, rotatedAt.Add(time.Hour), r.PreviousSecretExpiresAt.UTC())
		require.Equal(t, rotatedAt, r.UpdatedAt.UTC())
		// What the API says from now on.
		shown := e.getWebhook(e.alice, w.Id)
		require.Equal(t, r.PreviousSecretExpiresAt, shown.PreviousSecretExpiresAt)
		res, err := e.alice.GetWebhookWithResponse(ctx, w.Id, &hookferry.GetWebhookParams{ShowAuthentication: ptr(true)})
		require.NoError(t, err)
		require.Equal(t, current, res.JSON200.Authentication.Secret)

		// During the overlap every delivery verifies with either secret, and
		// the newest signature comes first.
		const overlap = 20
		for i := range overlap {
			e.publish(pub, event("order.created", fmt.Sprintf(`{"n":%d}`, i+1)))
		}
		for range overlap {
			got := rcv.next(t)
			require.Equal(t, []string{"v1", "v1"}, signatures(got))
			require.True(t, verifies(t, old, got), "the previous secret fails during the overlap")
			require.True(t, verifies(t, current, got), "the new secret fails during the overlap")
			first := got
			first.header = got.header.Clone()
			first.header.Set("webhook-signature", strings.Fields(got.header.Get("webhook-signature"))[0])
			require.True(t, verifies(t, current, first), "the newest signature is not first")
		}

		// After it, only the new one. (The clock jumps past the leases too:
		// wait for every result to be written, or a delivery whose result is
		// still on its way would be claimed again, as it should.)
		e.settled(w.Id)
		e.clock.Advance(time.Hour)
		after := e.publish(pub, event("order.created", `{"after":true}`))
		got = rcv.next(t)
		require.Equal(t, after.Id, got.header.Get("webhook-id"), "%s", got.body)
		require.Equal(t, []string{"v1"}, signatures(got))
		require.True(t, verifies(t, current, got))
		require.False(t, verifies(t, old, got), "an expired secret still signs")
		require.Nil(t, e.getWebhook(e.alice, w.Id).PreviousSecretExpiresAt)
	})
}

func TestRotateSecretBounds(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, be storetest.Backend) {
		e, rcv, pub := rotationEnv(t, be)
		w := e.register(e.alice, rcv.srv.URL+"/hooks")

		// Without a body the previous secret signs for a day.
		secrets := []string{w.Authentication.Secret}
		r := e.rotate(e.alice, w.Id, "")
		require.Equal(t, e.clock.Now().Add(24*time.Hour), r.PreviousSecretExpiresAt.UTC())
		secrets = append([]string{r.Authentication.Secret}, secrets...)
		r = e.rotate(e.alice, w.Id, `{}`)
		secrets = append([]string{r.Authentication.Secret}, secrets...)

		// At most five previous secrets: after seven rotations the oldest two
		// sign nothing.
		for range 5 {
			r = e.rotate(e.alice, w.Id, `{"previous_secret_ttl_seconds":604800}`)
			secrets = append([]string{r.Authentication.Secret}, secrets...)
		}
		require.Len(t, secrets, 8)
		e.publish(pub, event("order.created", `{}`))
		got := rcv.next(t)
		require.Len(t, signatures(got), 6)
		for i, s := range secrets {
			require.Equal(t, i < 6, verifies(t, s, got), "secret %d of %d, newest first", i, len(secrets))
		}

		// ttl 0: the replaced secret stops at once; the others keep their own
		// expiry.
		r = e.rotate(e.alice, w.Id, `{"previous_secret_ttl_seconds":0}`)
		e.publish(pub, event("order.created", `{}`))
		got = rcv.next(t)
		require.Len(t, signatures(got), 6, "the new secret and the five previous ones")
		require.True(t, verifies(t, r.Authentication.Secret, got))
		require.False(t, verifies(t, secrets[0], got), "ttl 0 kept the replaced secret")
		require.True(t, verifies(t, secrets[1], got))
	})
}

func TestRotateSecretRejectsBadInput(t *testing.T) {
	t.Parallel()
	cases := []struct{ name, body string }{
		{"negative", `{"previous_secret_ttl_seconds":-1}`},
		{"over a week", `{"previous_secret_ttl_seconds":604801}`},
		{"not a number", `{"previous_secret_ttl_seconds":"3600"}`},
		{"fraction", `{"previous_secret_ttl_seconds":1.5}`},
		{"null", `{"previous_secret_ttl_seconds":null}`},
		{"unknown field", `{"ttl":60}`},
		{"not an object", `[60]`},
		{"malformed", `{"previous_secret_ttl_seconds":`},
		{"trailing data", `{"previous_secret_ttl_seconds":60} {}`},
	}
	eachBackend(t, func(t *testing.T, be storetest.Backend) {
		e := setup(t, be)
		w := e.register(e.alice, "https://example.com/h")
		before, err := e.alice.GetWebhookWithResponse(ctx, w.Id, &hookferry.GetWebhookParams{ShowAuthentication: ptr(true)})
		require.NoError(t, err)
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				res := e.rotateRaw(e.alice, w.Id, tc.body)
				requireError(t, res, res.Body, http.StatusBadRequest, hookferry.ErrorCodeINVALIDREQUEST)
			})
		}
		after, err := e.alice.GetWebhookWithResponse(ctx, w.Id, &hookferry.GetWebhookParams{ShowAuthentication: ptr(true)})
		require.NoError(t, err)
		require.Equal(t, *before.JSON200, *after.JSON200, "a refused rotation changed something")

		// Another user's webhook, an unknown one, and a token without the
		// permission.
		bob := e.client(e.token("acme", "bob", auth.PermissionWebhookManagement))
		res := e.rotateRaw(bob, w.Id, "")
		requireError(t, res, res.Body, http.StatusNotFound, hookferry.ErrorCodeWEBHOOKNOTFOUND)
		res = e.rotateRaw(e.alice, "wh_nope", "")
		requireError(t, res, res.Body, http.StatusNotFound, hookferry.ErrorCodeWEBHOOKNOTFOUND)
		res = e.rotateRaw(e.publisher("acme"), w.Id, "")
		requireError(t, res, res.Body, http.StatusForbidden, hookferry.ErrorCodePERMISSIONDENIED)
		res = e.rotateRaw(e.client(""), w.Id, "")
		requireError(t, res, res.Body, http.StatusUnauthorized, hookferry.ErrorCodeUNAUTHENTICATED)
	})
}

func TestAsymmetricSigning(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, be storetest.Backend) {
		e, rcv, pub := rotationEnv(t, be)
		body := registerBody(rcv.srv.URL + "/hooks")
		body.Signing = ptr(hookferry.SigningASYMMETRIC)
		reg, err := e.alice.RegisterWebhookWithResponse(ctx, body)
		require.NoError(t, err)
		require.Equal(t, http.StatusCreated, reg.StatusCode(), "%s", reg.Body)
		require.NotContains(t, string(reg.Body), "whsk_")
		w := *reg.JSON201
		require.Equal(t, hookferry.SigningASYMMETRIC, w.Signing)
		public := w.Authentication.Secret
		require.True(t, strings.HasPrefix(public, "whpk_"), public)

		// Every answer that shows authentication shows the public key.
		list, err := e.alice.ListWebhooksWithResponse(ctx, &hookferry.ListWebhooksParams{ShowAuthentication: ptr(true)})
		require.NoError(t, err)
		require.NotContains(t, string(list.Body), "whsk_")
		require.Equal(t, public, list.JSON200.Items[0].Authentication.Secret)
		require.Equal(t, hookferry.SigningASYMMETRIC, list.JSON200.Items[0].Signing)

		ev := e.publish(pub, event("order.created", `{"signed":"ed25519"}`))
		got := rcv.next(t)
		require.Equal(t, ev.Id, got.header.Get("webhook-id"))
		require.Equal(t, []string{"v1a"}, signatures(got))
		require.True(t, verifiesV1a(t, public, got))
		tampered := got
		tampered.body = append([]byte(nil), got.body...)
		tampered.body[len(tampered.body)-2] ^= 1
		require.False(t, verifiesV1a(t, public, tampered))

		// Rotation works the same way.
		r := e.rotate(e.alice, w.Id, `{"previous_secret_ttl_seconds":60}`)
		newPublic := r.Authentication.Secret
		require.True(t, strings.HasPrefix(newPublic, "whpk_"))
		require.NotEqual(t, public, newPublic)
		e.publish(pub, event("order.created", `{}`))
		got = rcv.next(t)
		require.Equal(t, []string{"v1a", "v1a"}, signatures(got))
		require.True(t, verifiesV1a(t, public, got))
		require.True(t, verifiesV1a(t, newPublic, got))
		e.settled(w.Id)
		e.clock.Advance(time.Minute)
		e.publish(pub, event("order.created", `{}`))
		got = rcv.next(t)
		require.Equal(t, []string{"v1a"}, signatures(got))
		require.True(t, verifiesV1a(t, newPublic, got))
		require.False(t, verifiesV1a(t, public, got))
	})
}

// TestUpdateSigning: changing signing rolls the key to one of the new kind;
// the old one signs on for a day, so the receiver can switch without a
// failed verification.
func TestUpdateSigning(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, be storetest.Backend) {
		e, rcv, pub := rotationEnv(t, be)
		w := e.register(e.alice, rcv.srv.URL+"/hooks")
		secret := w.Authentication.Secret

		// The same signing changes nothing, and shows the key.
		e.clock.Advance(time.Minute)
		same := e.updated(e.alice, w.Id, `{"signing":"SYMMETRIC"}`)
		require.Equal(t, secret, same.Authentication.Secret)
		require.Equal(t, w.UpdatedAt, same.UpdatedAt)
		require.Nil(t, same.PreviousSecretExpiresAt)

		res := e.update(e.alice, w.Id, `{"signing":"ASYMMETRIC"}`)
		require.Equal(t, http.StatusOK, res.StatusCode(), "%s", res.Body)
		require.NotContains(t, string(res.Body), "whsk_")
		a := *res.JSON200
		require.Equal(t, hookferry.SigningASYMMETRIC, a.Signing)
		public := a.Authentication.Secret
		require.True(t, strings.HasPrefix(public, "whpk_"), public)
		require.Equal(t, e.clock.Now().Add(24*time.Hour), a.PreviousSecretExpiresAt.UTC())
		require.Equal(t, e.clock.Now(), a.UpdatedAt.UTC())

		e.publish(pub, event("order.created", `{}`))
		got := rcv.next(t)
		require.Equal(t, []string{"v1a", "v1"}, signatures(got))
		require.True(t, verifiesV1a(t, public, got))
		require.True(t, verifies(t, secret, got), "the reference verifier with the old secret")

		// And back, in the same request as other changes. Settled first: a
		// delivery claimed before the webhook became ordered holds back the
		// next until it is recorded, which then waits for a poll, and this
		// dispatcher's clock (the test's) never reaches one.
		e.settled(w.Id)
		s := e.updated(e.alice, w.Id, `{"signing":"SYMMETRIC","ordered":true}`)
		require.Equal(t, hookferry.SigningSYMMETRIC, s.Signing)
		require.True(t, s.Ordered)
		require.True(t, strings.HasPrefix(s.Authentication.Secret, "whsec_"))
		e.publish(pub, event("order.created", `{}`))
		got = rcv.next(t)
		require.Equal(t, []string{"v1", "v1a", "v1"}, signatures(got))
		require.True(t, verifies(t, s.Authentication.Secret, got))
		require.True(t, verifiesV1a(t, public, got))
		require.True(t, verifies(t, secret, got))

		for _, bad := range []string{`{"signing":"RSA"}`, `{"signing":null}`, `{"signing":"symmetric"}`, `{"signing":1}`} {
			res := e.update(e.alice, w.Id, bad)
			requireError(t, res, res.Body, http.StatusBadRequest, hookferry.ErrorCodeINVALIDREQUEST)
		}
		reg, err := e.alice.RegisterWebhookWithBodyWithResponse(ctx, "application/json",
			strings.NewReader(`{"url":"https://example.com/x","subscription":{"event_types":["order.created"]},"signing":"ED25519"}`))
		require.NoError(t, err)
		requireError(t, reg, reg.Body, http.StatusBadRequest, hookferry.ErrorCodeINVALIDREQUEST)
	})
}
