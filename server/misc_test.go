package server_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	contract "github.com/hookferry/hookferry"
	"github.com/hookferry/hookferry/auth"
	hookferry "github.com/hookferry/hookferry/clients/go"
	"github.com/hookferry/hookferry/server"
	"github.com/hookferry/hookferry/store"
	"github.com/hookferry/hookferry/store/storetest"
	"github.com/hookferry/hookferry/webhook"
	"github.com/stretchr/testify/require"
)

func TestListEventTypes(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, be storetest.Backend) {
		e := setup(t, be)
		res, err := e.alice.ListEventTypesWithResponse(ctx)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode())
		var names []string
		for _, et := range res.JSON200.Items {
			names = append(names, et.Name)
			require.NotNil(t, et.Description)
		}
		var want []string
		for _, et := range webhook.DefaultCatalog().Types() {
			want = append(want, et.Name)
		}
		require.Equal(t, want, names)
		require.Contains(t, names, "order.created")

		catalog, err := webhook.LoadCatalog("shipment.sent, shipment.lost")
		require.NoError(t, err)
		custom := setup(t, be, func(c *server.Config) { c.Catalog = catalog })
		res, err = custom.alice.ListEventTypesWithResponse(ctx)
		require.NoError(t, err)
		require.Equal(t, []hookferry.EventType{{Name: "shipment.lost"}, {Name: "shipment.sent"}}, res.JSON200.Items)
		custom.register(custom.alice, "https://example.com/h", "shipment.lost")
		reg, err := custom.alice.RegisterWebhookWithResponse(ctx, registerBody("https://example.com/h2", "order.created"))
		require.NoError(t, err)
		requireError(t, reg, reg.Body, http.StatusBadRequest, hookferry.ErrorCodeINVALIDSUBSCRIPTION)
	})
}

func TestHealthAndReadiness(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, be storetest.Backend) {
		e := setup(t, be)
		anon := e.client("")
		health, err := anon.GetHealthWithResponse(ctx)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, health.StatusCode())
		require.Equal(t, hookferry.HealthStatusOk, health.JSON200.Status)
		ready, err := anon.GetReadinessWithResponse(ctx)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, ready.StatusCode())

		require.NoError(t, e.store.Close())
		ready, err = anon.GetReadinessWithResponse(ctx)
		require.NoError(t, err)
		require.Equal(t, http.StatusServiceUnavailable, ready.StatusCode())
		require.Equal(t, hookferry.HealthStatusUnavailable, ready.JSON503.Status)
		health, err = anon.GetHealthWithResponse(ctx)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, health.StatusCode(), "liveness does not depend on the database")

		// With the database gone, an API call is a 500 in the spec's shape.
		list, err := e.alice.ListWebhooksWithResponse(ctx, nil)
		require.NoError(t, err)
		requireError(t, list, list.Body, http.StatusInternalServerError, hookferry.ErrorCodeINTERNAL)
	})
}

func TestUnknownRoutes(t *testing.T) {
	t.Parallel()
	e := setup(t, storetest.Backends()[0])
	for _, tc := range []struct {
		method, path string
		status       int
		code         hookferry.ErrorCode
	}{
		{http.MethodGet, "/v1/nothing", http.StatusNotFound, hookferry.ErrorCodeNOTFOUND},
		{http.MethodGet, "/nothing", http.StatusNotFound, hookferry.ErrorCodeNOTFOUND},
		{http.MethodPut, "/v1/webhooks", http.StatusMethodNotAllowed, hookferry.ErrorCodeMETHODNOTALLOWED},
		{http.MethodGet, "/v1/webhooks/x/pause", http.StatusMethodNotAllowed, hookferry.ErrorCodeMETHODNOTALLOWED},
	} {
		req, err := http.NewRequestWithContext(ctx, tc.method, e.url+tc.path, nil)
		require.NoError(t, err)
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		var buf bytes.Buffer
		_, _ = buf.ReadFrom(res.Body)
		res.Body.Close()
		requireError(t, statusOnly(res.StatusCode), buf.Bytes(), tc.status, tc.code)
	}
}

type statusOnly int

func (s statusOnly) StatusCode() int { return int(s) }

// FuzzRegisterWebhook sends arbitrary bodies through the whole pipeline
// (authentication, validation, handler, SQLite): the answer is always one the
// contract lists, in the Error shape when it is not a 201, never a 500.
func FuzzRegisterWebhook(f *testing.F) {
	for _, seed := range []string{
		`{"url":"https://example.com/h","subscription":{"event_types":["order.created"]}}`,
		`{"url":"http://example.com/h","subscription":{"event_types":["order.created"]}}`,
		`{"url":"https://127.0.0.1/h","subscription":{"event_types":["order.created"]}}`,
		`{"url":"https://example.com/h","subscription":{"event_types":["order.created","order.created"]}}`,
		`{"url":"https://example.com/h","subscription":{"event_types":[]}}`,
		`{"url":"https://[::ffff:10.0.0.1]/","subscription":{"event_types":["payment.failed"]}}`,
		`{"url":"https://user@example.com/h","subscription":{"event_types":["order.created"]}}`,
		`{"url":"https://example.com:99999/h","subscription":{"event_types":["order.created"]}}`,
		`{"url":"https://%zz","subscription":{"event_types":["order.created"]}}`,
		`{"url":"https://ex ample.com","subscription":{"event_types":["order.created"]}}`,
		`{"url":null,"subscription":null}`,
		`{"url":"https://example.com/h","subscription":{"event_types":[null]}}`,
		`[]`, `"x"`, `{}`, `{"url":`, "\x00",
	} {
		f.Add(seed)
	}
	st, err := store.Open(ctx, "sqlite:"+f.TempDir()+"/fuzz.db", store.Options{Keys: storetest.Keys()})
	require.NoError(f, err)
	defer st.Close()
	srv, err := server.New(st, server.Config{MaxWebhooksPerUser: 1 << 30})
	require.NoError(f, err)
	_, token, err := st.CreateToken(ctx, "acme", "fuzz", []auth.Permission{auth.PermissionWebhookManagement})
	require.NoError(f, err)
	allowed := map[int][]hookferry.ErrorCode{
		http.StatusBadRequest: {hookferry.ErrorCodeINVALIDREQUEST, hookferry.ErrorCodeINVALIDURL, hookferry.ErrorCodeINVALIDURLISNOTUSINGHTTPS, hookferry.ErrorCodeINVALIDSUBSCRIPTION},
		http.StatusConflict:   {hookferry.ErrorCodeDUPLICATEURL},
	}
	f.Fuzz(func(t *testing.T, body string) {
		req := httptest.NewRequest(http.MethodPost, "/v1/webhooks", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		srv.Handler().ServeHTTP(rec, req)
		if rec.Code == http.StatusCreated {
			var w hookferry.Webhook
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &w))
			_, err := webhook.CheckURL(w.Url, false)
			require.NoError(t, err, "accepted a URL the rules refuse")
			return
		}
		codes, ok := allowed[rec.Code]
		require.True(t, ok, "status %d for %q: %s", rec.Code, body, rec.Body)
		var e hookferry.Error
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &e), "%s", rec.Body)
		require.Contains(t, codes, e.Code, "%s", rec.Body)
		require.NotEmpty(t, e.Message)
	})
}

func TestServesItsContract(t *testing.T) {
	t.Parallel()
	e := setup(t, storetest.Backends()[0])
	anon := e.client("")
	y, err := anon.GetOpenAPIYAMLWithResponse(ctx)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, y.StatusCode())
	require.Equal(t, "application/yaml", y.HTTPResponse.Header.Get("Content-Type"))
	require.Equal(t, contract.OpenAPI, y.Body)
	j, err := anon.GetOpenAPIJSONWithResponse(ctx)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, j.StatusCode())
	doc, err := openapi3.NewLoader().LoadFromData(j.Body)
	require.NoError(t, err, "the JSON form loads as OpenAPI")
	require.NoError(t, doc.Validate(ctx))
	require.NotNil(t, doc.Paths.Find("/v1/webhooks"))
}
