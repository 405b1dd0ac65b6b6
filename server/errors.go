package server

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/hookferry/hookferry/gen"
	"github.com/hookferry/hookferry/webhook"
	"github.com/labstack/echo/v4"
)

// problem is an error answered with the spec's Error body; middleware returns it
// and handleError renders it.
type problem struct {
	status     int
	body       gen.Error
	retryAfter int // seconds; 0 for none
}

func (p *problem) Error() string { return string(p.body.Code) + ": " + p.body.Message }

func newProblem(status int, code gen.ErrorCode, format string, args ...any) *problem {
	return &problem{status: status, body: apiErrorf(code, format, args...)}
}

func apiError(code gen.ErrorCode, message string) gen.Error {
	return gen.Error{Code: code, Message: message}
}

func apiErrorf(code gen.ErrorCode, format string, args ...any) gen.Error {
	return apiError(code, fmt.Sprintf(format, args...))
}

// ruleError renders a broken registration rule; anything else is a bad request.
func ruleError(err error) gen.Error {
	var re *webhook.RuleError
	if errors.As(err, &re) {
		return apiError(gen.ErrorCode(re.Code), re.Message)
	}
	return apiError(gen.ErrorCodeINVALIDREQUEST, err.Error())
}

// echoStatusCodes maps what Echo itself answers to the spec's codes.
var echoStatusCodes = map[int]gen.ErrorCode{
	http.StatusBadRequest:            gen.ErrorCodeINVALIDREQUEST,
	http.StatusUnauthorized:          gen.ErrorCodeUNAUTHENTICATED,
	http.StatusForbidden:             gen.ErrorCodePERMISSIONDENIED,
	http.StatusNotFound:              gen.ErrorCodeNOTFOUND,
	http.StatusMethodNotAllowed:      gen.ErrorCodeMETHODNOTALLOWED,
	http.StatusRequestEntityTooLarge: gen.ErrorCodePAYLOADTOOLARGE,
	http.StatusUnsupportedMediaType:  gen.ErrorCodeINVALIDREQUEST,
	http.StatusTooManyRequests:       gen.ErrorCodeTOOMANYREQUESTS,
}

// handleError is Echo's one error handler: every error leaves as the spec's Error
// body. Only internal errors are logged with their detail, and only they are
// hidden from the caller.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	var p *problem
	var he *echo.HTTPError
	switch {
	case errors.As(err, &p):
	case errors.As(err, &he) && echoStatusCodes[he.Code] != "":
		msg := http.StatusText(he.Code)
		if m, ok := he.Message.(string); ok && he.Code == http.StatusBadRequest {
			msg = m
		}
		p = newProblem(he.Code, echoStatusCodes[he.Code], "%s", msg)
	default:
		s.log.Error("internal error", "method", c.Request().Method, "path", c.Request().URL.Path,
			"request_id", c.Response().Header().Get(echo.HeaderXRequestID), "error", err)
		p = newProblem(http.StatusInternalServerError, gen.ErrorCodeINTERNAL, "internal error; the request id is in the X-Request-Id header")
	}
	if p.status == http.StatusUnauthorized {
		c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="hookferry"`)
	}
	if p.retryAfter > 0 {
		c.Response().Header().Set("Retry-After", strconv.Itoa(p.retryAfter))
	}
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(p.status)
		return
	}
	if werr := c.JSON(p.status, p.body); werr != nil {
		s.log.Debug("writing error response", "error", werr)
	}
}
