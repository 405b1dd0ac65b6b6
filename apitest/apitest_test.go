package apitest_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/hookferry/hookferry/apitest"
	"github.com/stretchr/testify/require"
)

// recorder is a testing.TB that keeps the errors reported to it.
type recorder struct {
	testing.TB
	errors []string
}

func (r *recorder) Errorf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

// TestCatchesResponsesOutsideTheContract serves answers that break the
// contract in each way it can be broken, and some that keep it.
func TestCatchesResponsesOutsideTheContract(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, path string
		status     int
		header     map[string]string
		body       string
		violation  string // "" when the answer keeps the contract
	}{
		{"valid list", "/v1/webhooks", 200, nil, `{"items":[]}`, ""},
		{"valid error", "/v1/webhooks", 401, nil, `{"code":"UNAUTHENTICATED","message":"no"}`, ""},
		{"wrong body type", "/v1/webhooks", 200, nil, `{"items":5}`, "items"},
		{"missing required field", "/v1/webhooks", 200, nil, `{}`, "items"},
		{"unknown error code", "/v1/webhooks", 401, nil, `{"code":"NOPE","message":"no"}`, "code"},
		{"undeclared status", "/v1/webhooks", 418, nil, `{"code":"INTERNAL","message":"teapot"}`, "418"},
		{"undeclared status on delete", "/v1/webhooks/wh_1", 409, nil, `{"code":"INTERNAL","message":"x"}`, "409"},
		{"not JSON", "/v1/webhooks", 200, nil, `<html>`, "decode"},
		{"missing Retry-After", "/v1/webhooks/wh_1/unpause", 429, nil, `{"code":"TOO_MANY_REQUESTS","message":"later"}`, "Retry-After"},
		{"with Retry-After", "/v1/webhooks/wh_1/unpause", 429, map[string]string{"Retry-After": "3"}, `{"code":"TOO_MANY_REQUESTS","message":"later"}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				for k, v := range tc.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(tc.body))
			}))
			defer srv.Close()
			rec := &recorder{TB: t}
			method := http.MethodGet
			switch {
			case strings.HasSuffix(tc.path, "/unpause"):
				method = http.MethodPost
			case strings.HasPrefix(tc.path, "/v1/webhooks/"):
				method = http.MethodDelete
			}
			req, err := http.NewRequest(method, srv.URL+tc.path, nil)
			require.NoError(t, err)
			res, err := apitest.Client(rec).Do(req)
			require.NoError(t, err)
			res.Body.Close()
			if tc.violation == "" {
				require.Empty(t, rec.errors)
				return
			}
			require.Len(t, rec.errors, 1)
			require.Contains(t, rec.errors[0], "outside the contract")
			require.Contains(t, rec.errors[0], tc.violation)
		})
	}
}
