package server

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/hookferry/hookferry/auth"
	"github.com/hookferry/hookferry/gen"
	"github.com/hookferry/hookferry/store"
	"github.com/labstack/echo/v4"
)

// permissionExtension names, on each operation of the spec, the permission the
// operation needs.
const permissionExtension = "x-hookferry-permission"

// contract guards every /v1 request, in the order a caller expects to hear about
// problems: 401 (who are you), 429 (your tenant is over its rate limit), 403
// (you may not), 400 (what you sent is wrong). Routes the spec does not know
// fall through to Echo's 404 and 405.
func (s *Server) contract(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		if !isAPIPath(req.URL.Path) {
			return next(c)
		}
		route, pathParams, err := s.router.FindRoute(req)
		if err != nil {
			return next(c)
		}
		principal, err := s.authenticate(req)
		if err != nil {
			return err
		}
		// Only an authenticated request counts, against its token's tenant.
		if wait := s.limits.take(principal.TenantID, s.cfg.Now()); wait > 0 {
			secs := retryAfterSeconds(wait)
			return &problem{status: http.StatusTooManyRequests, retryAfter: secs, body: apiErrorf(gen.ErrorCodeTOOMANYREQUESTS,
				"this tenant is over its limit of %d requests per second; retry in %d s", s.cfg.RateLimit, secs)}
		}
		perm, _ := route.Operation.Extensions[permissionExtension].(string)
		if perm == "" || !principal.Can(auth.Permission(perm)) {
			return newProblem(http.StatusForbidden, gen.ErrorCodePERMISSIONDENIED, "this token lacks the %s permission", orUnknown(perm))
		}
		ctx := auth.WithPrincipal(req.Context(), principal)
		req = req.WithContext(ctx)
		if req.ContentLength > s.cfg.MaxBodyBytes {
			return newProblem(http.StatusRequestEntityTooLarge, gen.ErrorCodePAYLOADTOOLARGE, "the request body is larger than %d bytes", s.cfg.MaxBodyBytes)
		}
		if req.Body != nil && req.Body != http.NoBody {
			req.Body = http.MaxBytesReader(c.Response(), req.Body, s.cfg.MaxBodyBytes)
		}
		err = openapi3filter.ValidateRequest(ctx, &openapi3filter.RequestValidationInput{
			Request: req, PathParams: pathParams, Route: route,
			Options: &openapi3filter.Options{
				AuthenticationFunc: openapi3filter.NoopAuthenticationFunc,
				MultiError:         true,
				// Setting defaults re-encodes the body: event data must pass
				// through as sent. Handlers apply the defaults themselves.
				SkipSettingDefaults: true,
			},
		})
		if err != nil {
			if p := s.domainProblem(route.Operation.OperationID, req); p != nil {
				return p
			}
			return s.requestProblem(err)
		}
		c.SetRequest(req)
		return next(c)
	}
}

func orUnknown(perm string) string {
	if perm == "" {
		return "(undeclared)"
	}
	return perm
}

// authenticate resolves the bearer token of req.
func (s *Server) authenticate(req *http.Request) (auth.Principal, error) {
	scheme, token, ok := strings.Cut(req.Header.Get(echo.HeaderAuthorization), " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return auth.Principal{}, newProblem(http.StatusUnauthorized, gen.ErrorCodeUNAUTHENTICATED, "send the token in the Authorization header: Bearer TOKEN")
	}
	p, err := s.store.Authenticate(req.Context(), token)
	if errors.Is(err, store.ErrTokenUnauthorized) {
		return auth.Principal{}, newProblem(http.StatusUnauthorized, gen.ErrorCodeUNAUTHENTICATED, "the token is unknown or revoked")
	}
	if err != nil {
		return auth.Principal{}, err
	}
	return p, nil
}

// domainProblem re-judges a body the validator refused with the domain rules,
// which name the most specific code: a bad url, subscription or event type wins
// over whatever else is wrong with the request.
func (s *Server) domainProblem(operationID string, req *http.Request) *problem {
	// The embedded spec's operation ids are capitalised: compare without case.
	register := strings.EqualFold(operationID, "registerWebhook") || strings.EqualFold(operationID, "updateWebhook")
	publish := strings.EqualFold(operationID, "publishEvent")
	if req.Body == nil || !(register || publish) {
		return nil
	}
	raw, err := io.ReadAll(req.Body) // the validator left a rewound copy
	if err != nil {
		return nil
	}
	var body struct {
		URL          any `json:"url"`
		Subscription *struct {
			EventTypes []any `json:"event_types"`
		} `json:"subscription"`
		Type any `json:"type"`
	}
	if json.Unmarshal(raw, &body) != nil {
		return nil
	}
	if publish {
		if t, ok := body.Type.(string); ok && !s.cfg.Catalog.Has(t) {
			return badRequest(unknownEventType(t))
		}
		return nil
	}
	if u, ok := body.URL.(string); ok {
		if _, err := s.checkURL(u); err != nil {
			return badRequest(ruleError(err))
		}
	}
	if body.Subscription != nil && body.Subscription.EventTypes != nil {
		names := make([]string, 0, len(body.Subscription.EventTypes))
		for _, v := range body.Subscription.EventTypes {
			if name, ok := v.(string); ok {
				names = append(names, name)
			}
		}
		if len(names) == len(body.Subscription.EventTypes) {
			if err := s.cfg.Catalog.CheckSubscription(names); err != nil {
				return badRequest(ruleError(err))
			}
		}
	}
	return nil
}

// requestProblem turns the validator's verdict into a code, for what the domain
// rules (domainProblem) found nothing wrong with: a schema error in the url is
// INVALID_URL, in the subscription INVALID_SUBSCRIPTION, anywhere else
// INVALID_REQUEST.
func (s *Server) requestProblem(err error) error {
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return newProblem(http.StatusRequestEntityTooLarge, gen.ErrorCodePAYLOADTOOLARGE, "the request body is larger than %d bytes", tooLarge.Limit)
	}
	// The first error of the most specific field: url, then subscription.
	code, message := gen.ErrorCodeINVALIDREQUEST, "the request does not match the API contract"
	rank := 3
	for _, f := range flatten(err) {
		if r, c := fieldCode(f.field); r < rank {
			rank, code, message = r, c, f.message
		}
	}
	return newProblem(http.StatusBadRequest, code, "%s", message)
}

// fieldCode ranks a body field by how specific its code is.
func fieldCode(field string) (int, gen.ErrorCode) {
	switch field {
	case "url":
		return 0, gen.ErrorCodeINVALIDURL
	case "subscription":
		return 1, gen.ErrorCodeINVALIDSUBSCRIPTION
	}
	return 2, gen.ErrorCodeINVALIDREQUEST
}

func badRequest(body gen.Error) *problem {
	return &problem{status: http.StatusBadRequest, body: body}
}

// fieldError is one leaf of the validator's verdict.
type fieldError struct {
	field   string // the top-level body property at fault; "" for the rest
	message string
}

// flatten walks the validator's nested errors down to their leaves.
func flatten(err error) []fieldError {
	var out []fieldError
	var walk func(err error, inBody bool, prefix string)
	walk = func(err error, inBody bool, prefix string) {
		var me openapi3.MultiError
		var re *openapi3filter.RequestError
		var se *openapi3.SchemaError
		switch {
		case errors.As(err, &me) && isMulti(err):
			for _, e := range me {
				walk(e, inBody, prefix)
			}
		case errors.As(err, &re):
			switch {
			case re.Parameter != nil:
				prefix = re.Parameter.In + " parameter " + re.Parameter.Name
				if re.Err == nil {
					out = append(out, fieldError{message: prefix + ": " + re.Reason})
					return
				}
				walk(re.Err, false, prefix)
			case re.RequestBody != nil && re.Err != nil:
				walk(re.Err, true, "body")
			default:
				out = append(out, fieldError{message: re.Error()})
			}
		case errors.As(err, &se):
			path := se.JSONPointer()
			f := fieldError{message: prefix + ": " + se.Reason}
			if inBody && len(path) > 0 {
				f.field = path[0]
				f.message = pointerString(path) + ": " + se.Reason
			}
			out = append(out, f)
		default:
			out = append(out, fieldError{message: prefix + ": " + err.Error()})
		}
	}
	walk(err, false, "request")
	return out
}

func isMulti(err error) bool {
	_, ok := err.(openapi3.MultiError)
	return ok
}

// pointerString renders ["subscription","event_types","2"] as
// subscription.event_types[2].
func pointerString(path []string) string {
	var b strings.Builder
	for i, p := range path {
		if p != "" && strings.Trim(p, "0123456789") == "" && i > 0 {
			b.WriteString("[" + p + "]")
			continue
		}
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(p)
	}
	return b.String()
}
