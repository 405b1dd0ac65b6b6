package portal_test

import (
	"bytes"
	"compress/gzip"
	"io/fs"
	"regexp"
	"strings"
	"testing"

	"github.com/hookferry/hookferry/portal"
	"github.com/stretchr/testify/require"
)

// MaxGzipBytes bounds the portal: every file, gzip-compressed, summed. The
// README states the size.
const MaxGzipBytes = 150 << 10

func TestSize(t *testing.T) {
	t.Parallel()
	total := 0
	err := fs.WalkDir(portal.Files, "dist", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(portal.Files, path)
		if err != nil {
			return err
		}
		var buf bytes.Buffer
		w, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		_, _ = w.Write(b)
		_ = w.Close()
		t.Logf("%s: %d bytes, %d gzip", path, len(b), buf.Len())
		total += buf.Len()
		return nil
	})
	require.NoError(t, err)
	t.Logf("total: %d bytes gzip", total)
	require.Less(t, total, MaxGzipBytes)
}

// TestNothingInlineNothingElsewhere: the page works under script-src 'self'
// and style-src 'self' with nothing from another origin, and the script builds
// no markup from strings.
func TestNothingInlineNothingElsewhere(t *testing.T) {
	t.Parallel()
	html, err := fs.ReadFile(portal.Files, "dist/index.html")
	require.NoError(t, err)
	for _, tag := range regexp.MustCompile(`<script[^>]*>`).FindAllString(string(html), -1) {
		require.Regexp(t, `src="[a-z]+\.js"`, tag, "scripts come from files of the portal")
	}
	require.NotRegexp(t, `<script[^>]*>[^<]`, string(html), "no inline script")
	require.NotContains(t, string(html), "<style", "no inline style")
	require.NotRegexp(t, `\son[a-z]+=`, string(html), "no inline handlers")
	require.NotRegexp(t, `(src|href)="(https?:)?//`, string(html), "nothing from elsewhere")
	js, err := fs.ReadFile(portal.Files, "dist/portal.js")
	require.NoError(t, err)
	for _, sink := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"} {
		require.False(t, strings.Contains(string(js), sink), "portal.js uses %s", sink)
	}
}
