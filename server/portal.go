package server

import (
	"context"
	"io/fs"
	"net/http"
	"strings"
	"time"

	"github.com/hookferry/hookferry/auth"
	"github.com/hookferry/hookferry/gen"
	"github.com/hookferry/hookferry/portal"
	"github.com/labstack/echo/v4"
)

// DefaultPortalSessionTTL is a portal session's life when the request gives
// none; openapi.yaml bounds ttl_seconds, and the contract refuses the rest.
const DefaultPortalSessionTTL = time.Hour

// DefaultPortalFrameAncestors is the CSP frame-ancestors of the portal when
// the deployment sets none: only pages of hookferry's own origin may frame it.
const DefaultPortalFrameAncestors = "'self'"

// CreatePortalSession implements createPortalSession: a token of the caller's
// tenant for the user, with WEBHOOK_MANAGEMENT only, that expires.
func (s *Server) CreatePortalSession(ctx context.Context, req gen.CreatePortalSessionRequestObject) (gen.CreatePortalSessionResponseObject, error) {
	p, _ := auth.PrincipalFrom(ctx)
	user := req.Body.UserId
	if strings.TrimSpace(user) == "" {
		return gen.CreatePortalSession400JSONResponse{BadRequestJSONResponse: gen.BadRequestJSONResponse(
			apiError(gen.ErrorCodeINVALIDREQUEST, "user_id must not be blank"))}, nil
	}
	ttl := DefaultPortalSessionTTL
	if req.Body.TtlSeconds != nil {
		ttl = time.Duration(*req.Body.TtlSeconds) * time.Second
	}
	expires := s.cfg.Now().Add(ttl).UTC().Truncate(time.Second)
	tok, secret, err := s.store.CreateExpiringToken(ctx, p.TenantID, user, []auth.Permission{auth.PermissionWebhookManagement}, expires)
	if err != nil {
		return nil, err
	}
	return gen.CreatePortalSession201JSONResponse{Url: s.portalURL(secret), ExpiresAt: *tok.ExpiresAt}, nil
}

// portalURL carries the credential in the fragment, which browsers never send
// to a server, so it reaches no access log, proxy or Referer.
func (s *Server) portalURL(secret string) string {
	return strings.TrimRight(s.cfg.PublicURL, "/") + "/portal/#session=" + secret
}

// portalCSP is the portal's Content-Security-Policy: its own scripts, styles
// and API only; no inline code, no eval, no plug-ins, no forms elsewhere.
func portalCSP(frameAncestors string) string {
	return "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; " +
		"base-uri 'none'; form-action 'none'; frame-ancestors " + frameAncestors
}

// CheckFrameAncestors accepts a CSP source list for frame-ancestors: sources
// separated by spaces, none of the characters that would end the directive.
func CheckFrameAncestors(v string) error {
	if strings.TrimSpace(v) == "" {
		return errorString("portal frame ancestors must not be blank (the default is 'self')")
	}
	for _, r := range v {
		if r == ';' || r == ',' || r < 0x20 || r > 0x7e {
			return errorString("portal frame ancestors: a space-separated list of CSP sources, such as 'self' https://app.example.com, without ; or ,")
		}
	}
	return nil
}

type errorString string

func (e errorString) Error() string { return string(e) }

// servePortal serves the embedded portal at /portal/ under its CSP.
func (s *Server) servePortal(e *echo.Echo) error {
	files, err := fs.Sub(portal.Files, "dist")
	if err != nil {
		return err
	}
	static := http.StripPrefix("/portal/", http.FileServer(http.FS(files)))
	csp := portalCSP(s.cfg.PortalFrameAncestors)
	e.GET("/portal", func(c echo.Context) error {
		return c.Redirect(http.StatusMovedPermanently, "/portal/")
	})
	e.GET("/portal/*", func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cache-Control", "no-cache")
		static.ServeHTTP(c.Response(), c.Request())
		return nil
	})
	return nil
}
