package hookferry

import (
	"encoding/base64"
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

func TestParseSignatures(t *testing.T) {
	t.Parallel()
	a, b := []byte{1, 2, 3}, []byte{4, 5, 6, 7}
	enc := base64.StdEncoding.EncodeToString
	require.Equal(t, []signature{{"v1", a}, {"v1a", b}, {"v1", b}},
		parseSignatures("  v1,"+enc(a)+"\tv1a,"+enc(b)+" v2,"+enc(a)+" v1 ,"+enc(a)+" v1,*** v1, v1,"+enc(b)+"  "))
	require.Empty(t, parseSignatures(""))
	require.Empty(t, parseSignatures("v1a"))
}

// FuzzParseSignatures: any header parses without panicking into entries of the
// known versions only, and printing what was parsed and parsing it again gives
// the same entries.
func FuzzParseSignatures(f *testing.F) {
	for _, seed := range []string{
		"",
		"v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
		"v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE= v1,bm9wZQ==",
		"v1a,KMv7Hn9jTv1xDZ6Ah5Fsa1o3eWcTZZFJJ/iY2nAGfBT6A0tn8iM3W1kV+1KrQWvrcr9Bq1hWEYRi7SC9Nq4YCA== v1,AA==",
		"v2,abc v1b,xyz v1,,, ,v1 v1,=",
		"v1,a\tv1a,b\nv1,c",
		"v1,\x00\xff",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, header string) {
		parsed := parseSignatures(header)
		require.LessOrEqual(t, len(parsed), len(strings.Fields(header)))
		printed := make([]string, len(parsed))
		for i, sig := range parsed {
			require.Contains(t, []string{versionHMAC, versionEd25519}, sig.version)
			require.NotEmpty(t, sig.value)
			printed[i] = sig.version + "," + base64.StdEncoding.EncodeToString(sig.value)
		}
		require.Equal(t, parsed, parseSignatures(strings.Join(printed, " ")))

		// Verify itself never panics on the header, and with a key nobody
		// signed with, never accepts.
		v, err := NewVerifier("whsec_" + base64.StdEncoding.EncodeToString([]byte("fuzz-secret")))
		require.NoError(t, err)
		v.Now = func() time.Time { return time.Unix(1700000000, 0) }
		h := http.Header{}
		h.Set(HeaderID, "msg")
		h.Set(HeaderTimestamp, "1700000000")
		h.Set(HeaderSignature, header)
		if utf8.ValidString(header) && strings.TrimSpace(header) != "" {
			require.ErrorIs(t, v.VerifySignature(h, []byte("{}")), ErrNoMatchingSignature)
		}
	})
}

// A MAC compared with an early exit tells an attacker, byte by byte, how much
// of a forged signature is right. No timing test can show that reliably, so
// this one reads the source: signatures are compared with hmac.Equal, and no
// non-test file of the package compares bytes any other way.
func TestSignaturesAreComparedInConstantTime(t *testing.T) {
	t.Parallel()
	fset := token.NewFileSet()
	file, err := parser.ParseFile(fset, "verify.go", nil, 0)
	require.NoError(t, err)
	var hmacEqual int
	ast.Inspect(file, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.SelectorExpr:
			if pkg, ok := n.X.(*ast.Ident); ok {
				name := pkg.Name + "." + n.Sel.Name
				switch name {
				case "hmac.Equal":
					hmacEqual++
				case "bytes.Equal", "bytes.Compare", "reflect.DeepEqual", "subtle.ConstantTimeEq":
					t.Errorf("%s: %s compares without constant time (or not bytes)", fset.Position(n.Pos()), name)
				}
			}
		case *ast.BinaryExpr:
			if n.Op == token.EQL || n.Op == token.NEQ {
				for _, side := range []ast.Expr{n.X, n.Y} {
					if call, ok := side.(*ast.CallExpr); ok {
						if fn, ok := call.Fun.(*ast.Ident); ok && fn.Name == "string" {
							t.Errorf("%s: == on string(…) compares without constant time", fset.Position(n.Pos()))
						}
					}
				}
			}
		}
		return true
	})
	require.Equal(t, 1, hmacEqual, "the v1 signature is compared with hmac.Equal")
}
