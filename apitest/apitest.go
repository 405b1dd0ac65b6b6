// Package apitest holds the contract check of the API tests: an HTTP transport
// that validates every response it carries against openapi.yaml (status, body
// and declared headers, errors included) and fails the test that saw a
// response outside the contract.
package apitest

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/hookferry/hookferry"
)

var (
	loadOnce sync.Once
	router   routers.Router
	loadErr  error
)

func contract() (routers.Router, error) {
	loadOnce.Do(func() {
		loader := openapi3.NewLoader()
		var doc *openapi3.T
		if doc, loadErr = loader.LoadFromData(hookferry.OpenAPI); loadErr != nil {
			return
		}
		if loadErr = doc.Validate(loader.Context); loadErr != nil {
			return
		}
		doc.Servers = nil // match any host: the tests' servers listen on random ports
		router, loadErr = gorillamux.NewRouter(doc)
	})
	return router, loadErr
}

// Client is an *http.Client whose responses are checked against the contract;
// violations fail t. Requests to routes the contract does not have (tests of
// unknown routes) pass unchecked.
func Client(t testing.TB) *http.Client {
	t.Helper()
	r, err := contract()
	if err != nil {
		t.Fatalf("apitest: openapi.yaml: %v", err)
	}
	return &http.Client{Transport: &transport{t: t, next: http.DefaultTransport, router: r}}
}

type transport struct {
	t      testing.TB
	next   http.RoundTripper
	router routers.Router
}

func (v *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	res, err := v.next.RoundTrip(req)
	if err != nil {
		return res, err
	}
	route, params, findErr := v.router.FindRoute(req)
	if findErr != nil {
		return res, nil
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		return nil, err
	}
	res.Body = io.NopCloser(bytes.NewReader(body))
	input := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request: req, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
		},
		Status:  res.StatusCode,
		Header:  res.Header,
		Body:    io.NopCloser(bytes.NewReader(body)),
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	if err := openapi3filter.ValidateResponse(context.WithoutCancel(req.Context()), input); err != nil {
		v.t.Errorf("apitest: %s %s (operation %s) answered %d outside the contract: %v\nbody: %.500s",
			req.Method, req.URL.Path, route.Operation.OperationID, res.StatusCode, err, body)
	}
	return res, nil
}
