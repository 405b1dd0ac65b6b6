package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
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
		limit := s.cfg.MaxBodyBytes
		if isOperation(route, "publishEvents") {
			limit = s.cfg.MaxBatchBytes
		}
		if req.ContentLength > limit {
			return newProblem(http.StatusRequestEntityTooLarge, gen.ErrorCodePAYLOADTOOLARGE, "the request body is larger than %d bytes", limit)
		}
		if req.Body != nil && req.Body != http.NoBody {
			req.Body = http.MaxBytesReader(c.Response(), req.Body, limit)
		}
		normalizeContentType(req)
		if p := checkText(req, pathParams); p != nil {
			return p
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
			if p := s.domainProblem(route, req); p != nil {
				return p
			}
			return s.requestProblem(err)
		}
		c.SetRequest(req)
		return next(c)
	}
}

// checkText refuses text no database can store faithfully, before the
// validator or a handler sees it. The rule: a path parameter holding NUL or
// invalid UTF-8 names an id that cannot exist, so it answers the 404 an unknown
// id answers (WEBHOOK_NOT_FOUND, DELIVERY_NOT_FOUND; every per-resource
// operation documents 404, not all document 400); NUL or invalid
// UTF-8 in a query string, and in a JSON body invalid UTF-8, a \u0000 or a
// lone surrogate escape in any string, trailing data after the value or a
// duplicate object key, answer 400 INVALID_REQUEST. PostgreSQL refuses NUL in
// text and invalid UTF-8 anywhere, and Go's JSON decoder silently replaces
// invalid text with U+FFFD, so two different inputs would become one.
func checkText(req *http.Request, pathParams map[string]string) *problem {
	if badText(req.URL.Path) {
		for _, p := range []struct {
			name string
			code gen.ErrorCode
			what string
		}{
			{"webhook_id", gen.ErrorCodeWEBHOOKNOTFOUND, "no webhook of yours has this id"},
			{"delivery_id", gen.ErrorCodeDELIVERYNOTFOUND, "this webhook has no delivery with this id"},
		} {
			if v, ok := pathParams[p.name]; ok && badPathParam(v) {
				return newProblem(http.StatusNotFound, p.code, "%s", p.what)
			}
		}
		return newProblem(http.StatusNotFound, gen.ErrorCodeNOTFOUND, "no resource has an id holding NUL or invalid UTF-8")
	}
	if req.URL.RawQuery != "" {
		q, err := url.ParseQuery(req.URL.RawQuery)
		if err != nil {
			return newProblem(http.StatusBadRequest, gen.ErrorCodeINVALIDREQUEST, "the query string does not parse: %v", err)
		}
		for k, vs := range q {
			if badText(k) {
				return newProblem(http.StatusBadRequest, gen.ErrorCodeINVALIDREQUEST, "a query parameter name holds NUL or invalid UTF-8")
			}
			for _, v := range vs {
				if badText(v) {
					return newProblem(http.StatusBadRequest, gen.ErrorCodeINVALIDREQUEST, "query parameter %s holds NUL or invalid UTF-8", k)
				}
			}
		}
	}
	if req.Body == nil || req.Body == http.NoBody || !isJSON(req.Header.Get(echo.HeaderContentType)) {
		return nil
	}
	raw, err := io.ReadAll(req.Body)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return newProblem(http.StatusRequestEntityTooLarge, gen.ErrorCodePAYLOADTOOLARGE, "the request body is larger than %d bytes", tooLarge.Limit)
		}
		return newProblem(http.StatusBadRequest, gen.ErrorCodeINVALIDREQUEST, "the request body could not be read")
	}
	req.Body = io.NopCloser(bytes.NewReader(raw))
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil // the validator says what an empty body lacks
	}
	if err := strictJSON(raw); err != nil {
		return newProblem(http.StatusBadRequest, gen.ErrorCodeINVALIDREQUEST, "the request body is not strict JSON: %v", err)
	}
	return nil
}

// badPathParam judges a path parameter whether or not the router unescaped it.
func badPathParam(v string) bool {
	if badText(v) {
		return true
	}
	u, err := url.PathUnescape(v)
	return err == nil && badText(u)
}

func badText(s string) bool { return strings.ContainsRune(s, 0) || !utf8.ValidString(s) }

// isJSON reports whether a Content-Type names JSON.
func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json"))
}

// normalizeContentType lower-cases the media type and parameter names of the
// request's Content-Type (they are case-insensitive, RFC 9110 §8.3.1), so that
// APPLICATION/JSON matches the spec's application/json.
func normalizeContentType(req *http.Request) {
	ct := req.Header.Get(echo.HeaderContentType)
	if ct == "" {
		return
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return
	}
	if cs, ok := params["charset"]; ok {
		params["charset"] = strings.ToLower(cs)
	}
	if f := mime.FormatMediaType(mt, params); f != "" {
		req.Header.Set(echo.HeaderContentType, f)
	}
}

// strictJSON checks that raw is exactly one JSON value, in valid UTF-8, with no
// duplicate object key, no NUL and no lone surrogate in any string.
func strictJSON(raw []byte) error {
	if !utf8.Valid(raw) {
		return errors.New("it is not valid UTF-8")
	}
	if err := surrogatesPaired(raw); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := strictValue(dec); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("data follows the JSON value")
	}
	return nil
}

func strictValue(dec *json.Decoder) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch tok := tok.(type) {
	case json.Delim:
		switch tok {
		case '{':
			seen := map[string]bool{}
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return err
				}
				key, _ := k.(string)
				if seen[key] {
					return fmt.Errorf("key %q appears twice in one object", key)
				}
				seen[key] = true
				if strings.ContainsRune(key, 0) {
					return errors.New("an object key holds NUL")
				}
				if err := strictValue(dec); err != nil {
					return err
				}
			}
		case '[':
			for dec.More() {
				if err := strictValue(dec); err != nil {
					return err
				}
			}
		}
		_, err := dec.Token() // the closing delimiter
		return err
	case string:
		if strings.ContainsRune(tok, 0) {
			return errors.New("a string holds NUL")
		}
	}
	return nil
}

// surrogatesPaired refuses \uD800-\uDFFF escapes that do not form a pair,
// which the decoder would replace with U+FFFD.
func surrogatesPaired(raw []byte) error {
	inString := false
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c == '"':
			inString = !inString
		case c == '\\' && inString && i+1 < len(raw):
			i++
			if raw[i] != 'u' {
				continue
			}
			r, ok := hex4(raw, i+1)
			if !ok {
				continue // the decoder refuses it
			}
			i += 4
			if r < 0xD800 || r > 0xDFFF {
				continue
			}
			if r >= 0xDC00 {
				return errors.New("a string holds a lone surrogate escape")
			}
			low, ok := hex4(raw, i+3)
			if i+2 >= len(raw) || raw[i+1] != '\\' || raw[i+2] != 'u' || !ok || low < 0xDC00 || low > 0xDFFF {
				return errors.New("a string holds a lone surrogate escape")
			}
			i += 6
		}
	}
	return nil
}

func hex4(raw []byte, at int) (rune, bool) {
	if at+4 > len(raw) {
		return 0, false
	}
	n, err := strconv.ParseUint(string(raw[at:at+4]), 16, 32)
	return rune(n), err == nil
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
		return auth.Principal{}, newProblem(http.StatusUnauthorized, gen.ErrorCodeUNAUTHENTICATED, "the token is unknown, revoked or expired")
	}
	if err != nil {
		return auth.Principal{}, err
	}
	return p, nil
}

// isOperation reports whether route is the operation of this id (the embedded
// spec's operation ids are capitalised: compare without case).
func isOperation(route *routers.Route, operationID string) bool {
	return strings.EqualFold(route.Operation.OperationID, operationID)
}

// domainProblem re-judges a body the validator refused with the domain rules,
// which name the most specific code: a bad url, subscription or event type wins
// over whatever else is wrong with the request.
func (s *Server) domainProblem(route *routers.Route, req *http.Request) *problem {
	register := isOperation(route, "registerWebhook") || isOperation(route, "updateWebhook")
	publish, batch := isOperation(route, "publishEvent"), isOperation(route, "publishEvents")
	if req.Body == nil || !(register || publish || batch) {
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
		Type   any `json:"type"`
		Events []struct {
			Type any `json:"type"`
		} `json:"events"`
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
	if batch {
		for i, ev := range body.Events {
			if t, ok := ev.Type.(string); ok && !s.cfg.Catalog.Has(t) {
				return batchProblem(http.StatusBadRequest, i, "type", unknownEventType(t))
			}
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
	// The first error of the most specific field: url, then subscription; in
	// a batch, of the first event at fault.
	code, message := gen.ErrorCodeINVALIDREQUEST, "the request does not match the API contract"
	rank, event := 3, -1
	var at fieldError
	for _, f := range flatten(err) {
		if i, ok := f.event(); ok && (event < 0 || i < event) {
			event, at = i, f
		}
		if r, c := fieldCode(f.field()); r < rank {
			rank, code, message = r, c, f.message
		}
	}
	if event >= 0 {
		e := apiError(gen.ErrorCodeINVALIDREQUEST, at.message)
		e.Details = eventDetails(event, pointerString(at.path))
		return &problem{status: http.StatusBadRequest, body: e}
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
	path    []string // the JSON pointer into the body at fault; nil for the rest
	message string
}

// field is the top-level body property at fault; "" for the rest.
func (f fieldError) field() string {
	if len(f.path) == 0 {
		return ""
	}
	return f.path[0]
}

// event is the index of the batch's event at fault (publishEvents' events[i]).
func (f fieldError) event() (int, bool) {
	if len(f.path) < 2 || f.path[0] != "events" {
		return 0, false
	}
	i, err := strconv.Atoi(f.path[1])
	return i, err == nil && i >= 0
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
				f.path = path
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
