package webhook_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hookferry/hookferry/webhook"
)

var defaultNames = []string{
	"customer.created", "customer.deleted", "customer.updated",
	"invoice.created", "invoice.paid",
	"order.cancelled", "order.created", "order.fulfilled", "order.updated",
	"payment.failed", "payment.refunded", "payment.succeeded",
}

func names(c *webhook.Catalog) []string {
	var out []string
	for _, t := range c.Types() {
		out = append(out, t.Name)
	}
	return out
}

func TestDefaultCatalog(t *testing.T) {
	t.Parallel()
	c := webhook.DefaultCatalog()
	require.Equal(t, defaultNames, names(c))
	for _, typ := range c.Types() {
		require.NotEmpty(t, typ.Description, typ.Name)
		require.True(t, c.Has(typ.Name))
	}
	require.False(t, c.Has("order.exploded"))
	require.False(t, c.Has(""))
	require.False(t, c.Has("ORDER.CREATED"))
}

func TestCatalogTypesIsSortedCopy(t *testing.T) {
	t.Parallel()
	c, err := webhook.NewCatalog([]webhook.EventType{
		{Name: "zeta"}, {Name: "alpha", Description: "first"}, {Name: "Mid"}, {Name: "beta.x"}, {Name: "1st"},
	})
	require.NoError(t, err)
	got := names(c)
	require.True(t, slices.IsSorted(got), "%v", got)
	require.Equal(t, []string{"1st", "Mid", "alpha", "beta.x", "zeta"}, got)
	require.Equal(t, "first", c.Types()[2].Description)

	// Changing the returned slice does not change the catalog.
	types := c.Types()
	types[0].Name = "changed"
	require.Equal(t, []string{"1st", "Mid", "alpha", "beta.x", "zeta"}, names(c))
}

func TestNewCatalog(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		types   []string
		wantErr string // empty: valid
	}{
		{"one", []string{"order.created"}, ""},
		{"all allowed characters", []string{"A-z_0.9:x"}, ""},
		{"digit first", []string{"0rder"}, ""},
		{"max length", []string{strings.Repeat("a", webhook.MaxEventTypeLength)}, ""},
		{"nil", nil, "empty"},
		{"empty", []string{}, "empty"},
		{"empty name", []string{""}, `""`},
		{"too long", []string{strings.Repeat("a", webhook.MaxEventTypeLength+1)}, "128"},
		{"space", []string{"order created"}, `"order created"`},
		{"leading dot", []string{".order"}, `".order"`},
		{"leading hyphen", []string{"-order"}, `"-order"`},
		{"leading underscore", []string{"_order"}, `"_order"`},
		{"slash", []string{"order/created"}, `"order/created"`},
		{"comma", []string{"a,b"}, `"a,b"`},
		{"non-ASCII", []string{"bestellung.erstellt.ü"}, "ü"},
		{"newline", []string{"order\ncreated"}, "order"},
		{"duplicate", []string{"a", "b", "a"}, `"a" is listed twice`},
		{"duplicate after valid", []string{"order.created", "order.created"}, "twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var types []webhook.EventType
			for _, n := range tt.types {
				types = append(types, webhook.EventType{Name: n})
			}
			if tt.types != nil && types == nil {
				types = []webhook.EventType{}
			}
			c, err := webhook.NewCatalog(types)
			if tt.wantErr != "" {
				require.Error(t, err)
				require.Contains(t, err.Error(), tt.wantErr)
				require.Nil(t, c)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.types, names(c))
		})
	}
}

func TestLoadCatalogDefault(t *testing.T) {
	t.Parallel()
	for _, spec := range []string{"", " ", "\t\n "} {
		c, err := webhook.LoadCatalog(spec)
		require.NoError(t, err)
		require.Equal(t, webhook.DefaultCatalog().Types(), c.Types())
	}
}

func TestLoadCatalogCommaList(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		spec    string
		want    []string
		wantErr string
	}{
		{"one", "order.created", []string{"order.created"}, ""},
		{"a file-like name within a list", "order.created,notes.txt", []string{"notes.txt", "order.created"}, ""},
		{"several, sorted", "b.two,a.one,c.three", []string{"a.one", "b.two", "c.three"}, ""},
		{"spaces trimmed", "  b.two , a.one ,c.three  ", []string{"a.one", "b.two", "c.three"}, ""},
		{"empty entries skipped", ",a,,b,", []string{"a", "b"}, ""},
		{"only commas", ",,,", nil, "empty"},
		{"duplicate", "a,b,a", nil, `"a" is listed twice`},
		{"duplicate after trimming", "a, a", nil, "twice"},
		{"invalid name", "a,b c", nil, `"b c"`},
		{"invalid start", "a,-b", nil, `"-b"`},
		{"too long", "a," + strings.Repeat("x", webhook.MaxEventTypeLength+1), nil, "128"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := webhook.LoadCatalog(tt.spec)
			if tt.wantErr != "" {
				require.Error(t, err)
				require.Contains(t, err.Error(), tt.wantErr)
				require.Nil(t, c)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, names(c))
			for _, typ := range c.Types() {
				require.Empty(t, typ.Description)
			}
		})
	}
}

func TestLoadCatalogFile(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		content string
		want    []webhook.EventType
		wantErr string
	}{
		{
			name: "comments, blank lines, descriptions",
			content: "# hookferry event types\n" +
				"\n" +
				"order.created An order was placed.\n" +
				"order.cancelled\tAn order was cancelled.\n" +
				"   \n" +
				"payment.failed    A payment failed.   # trailing comment\n" +
				"invoice.paid\t\t  An invoice was paid.\n" +
				"  customer.created\n" +
				"\t# indented comment\n" +
				"shipment.sent# comment right after the name\n" +
				"refund.issued \t mixed separators\n" +
				"a.b\t c d e\n",
			want: []webhook.EventType{
				{Name: "a.b", Description: "c d e"},
				{Name: "customer.created"},
				{Name: "invoice.paid", Description: "An invoice was paid."},
				{Name: "order.cancelled", Description: "An order was cancelled."},
				{Name: "order.created", Description: "An order was placed."},
				{Name: "payment.failed", Description: "A payment failed."},
				{Name: "refund.issued", Description: "mixed separators"},
				{Name: "shipment.sent"},
			},
		},
		{
			name:    "CRLF line ends",
			content: "b.two Second.\r\na.one\r\n# c\r\n",
			want:    []webhook.EventType{{Name: "a.one"}, {Name: "b.two", Description: "Second."}},
		},
		{
			name:    "no final newline",
			content: "only.one The only one.",
			want:    []webhook.EventType{{Name: "only.one", Description: "The only one."}},
		},
		{
			name:    "commas are not separators in a file",
			content: "a,b\n",
			wantErr: `"a,b"`,
		},
		{
			name:    "invalid name",
			content: "order.created\n-bad.name A bad one.\n",
			wantErr: `"-bad.name"`,
		},
		{
			name:    "non-ASCII name",
			content: "bestellung.erstellt\nzahlung.fehlgeschlagenü\n",
			wantErr: "zahlung",
		},
		{
			name:    "duplicate",
			content: "order.created First.\norder.updated\norder.created\tAgain.\n",
			wantErr: `"order.created" is listed twice`,
		},
		{
			name:    "only comments",
			content: "# nothing\n\n   # here\n",
			wantErr: "empty",
		},
		{
			name:    "empty file",
			content: "",
			wantErr: "empty",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "event-types.txt")
			require.NoError(t, os.WriteFile(path, []byte(tt.content), 0o600))
			for _, spec := range []string{path, "  " + path + "\n"} {
				c, err := webhook.LoadCatalog(spec)
				if tt.wantErr != "" {
					require.Error(t, err)
					require.Contains(t, err.Error(), tt.wantErr)
					require.Nil(t, c)
					continue
				}
				require.NoError(t, err)
				require.Equal(t, tt.want, c.Types())
				for _, typ := range tt.want {
					require.True(t, c.Has(typ.Name))
				}
			}
		})
	}
}

func TestLoadCatalogMissingPath(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, spec := range []string{
		filepath.Join(dir, "missing.txt"),
		filepath.Join(dir, "no", "such", "dir", "types"),
		"./missing-event-types.txt",
		"missing.txt", // a single name with a file extension is a file, not a one-type list
		"Event-Types.YAML",
		"types.json",
		"config/event-types.txt",
		`config\event-types.txt`,
		dir, // a directory is not a catalog file
	} {
		c, err := webhook.LoadCatalog(spec)
		require.Error(t, err, spec)
		require.Contains(t, err.Error(), "event types", spec)
		require.Nil(t, c)
	}
}

// TestLoadCatalogRelativeFile cannot be parallel: it changes the working directory.
func TestLoadCatalogRelativeFile(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "types.txt"), []byte("b.two\na.one One.\n"), 0o600))
	t.Chdir(dir)
	for _, spec := range []string{"types.txt", "./types.txt"} {
		c, err := webhook.LoadCatalog(spec)
		require.NoError(t, err, spec)
		require.Equal(t, []webhook.EventType{{Name: "a.one", Description: "One."}, {Name: "b.two"}}, c.Types())
	}
}

// testCatalog has n event types named t.000, t.001, ….
func testCatalog(t *testing.T, n int) (*webhook.Catalog, []string) {
	t.Helper()
	var types []webhook.EventType
	var all []string
	for i := range n {
		name := fmt.Sprintf("t.%03d", i)
		types = append(types, webhook.EventType{Name: name})
		all = append(all, name)
	}
	c, err := webhook.NewCatalog(types)
	require.NoError(t, err)
	return c, all
}

func TestCheckSubscriptionValid(t *testing.T) {
	t.Parallel()
	c := webhook.DefaultCatalog()
	for _, list := range [][]string{
		{"order.created"},
		{"payment.failed", "order.created"},
		defaultNames,
	} {
		require.NoError(t, c.CheckSubscription(list), "%v", list)
	}

	long := strings.Repeat("x", webhook.MaxEventTypeLength)
	lc, err := webhook.NewCatalog([]webhook.EventType{{Name: long}})
	require.NoError(t, err)
	require.NoError(t, lc.CheckSubscription([]string{long}))

	big, all := testCatalog(t, 150)
	require.NoError(t, big.CheckSubscription(all[:webhook.MaxSubscriptionSize]))
	require.NoError(t, big.CheckSubscription(all[50:150]))
}

func TestCheckSubscriptionInvalid(t *testing.T) {
	t.Parallel()
	big, all := testCatalog(t, 150)
	defaultCatalog := webhook.DefaultCatalog()
	tooLong := strings.Repeat("x", webhook.MaxEventTypeLength+1)

	tests := []struct {
		name     string
		catalog  *webhook.Catalog
		list     []string
		contains []string
	}{
		{"nil", defaultCatalog, nil, []string{"at least one"}},
		{"empty", defaultCatalog, []string{}, []string{"at least one"}},
		{"101 valid entries", big, all[:101], []string{"101", "100"}},
		{"150 entries", big, all, []string{"150", "100"}},
		{"101 copies", defaultCatalog, slices.Repeat([]string{"order.created"}, 101), []string{"101", "100"}},
		{"duplicate", defaultCatalog, []string{"order.created", "payment.failed", "order.created"},
			[]string{"event_types[2]", `"order.created"`, "twice"}},
		{"duplicate adjacent", defaultCatalog, []string{"invoice.paid", "invoice.paid"},
			[]string{"event_types[1]", `"invoice.paid"`, "twice"}},
		{"unknown", defaultCatalog, []string{"order.created", "order.exploded"},
			[]string{"event_types[1]", `"order.exploded"`, "not an event type"}},
		{"unknown first", defaultCatalog, []string{"nope", "order.created"},
			[]string{"event_types[0]", `"nope"`}},
		{"case matters", defaultCatalog, []string{"Order.Created"}, []string{"event_types[0]", `"Order.Created"`}},
		{"whitespace matters", defaultCatalog, []string{" order.created"}, []string{"event_types[0]", `" order.created"`}},
		{"empty name", defaultCatalog, []string{"order.created", ""}, []string{"event_types[1]", `""`}},
		{"first fault wins", defaultCatalog, []string{"order.created", "bad.one", "order.created"},
			[]string{"event_types[1]", `"bad.one"`}},
		{"over-long", defaultCatalog, []string{"order.created", tooLong}, []string{"event_types[1]", "longer than 128"}},
		{"huge name", defaultCatalog, []string{strings.Repeat("y", 100000)}, []string{"event_types[0]", "longer than 128"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.catalog.CheckSubscription(tt.list)
			re := requireRuleError(t, err, webhook.CodeInvalidSubscription, tt.contains...)
			require.Less(t, len(re.Message), 500, "the message must not echo a huge input")
		})
	}
}
