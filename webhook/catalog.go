package webhook

import (
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
)

// EventType is an entry of the catalog.
type EventType struct {
	Name        string
	Description string
}

// MaxSubscriptionSize bounds the event types of one subscription.
const MaxSubscriptionSize = 100

// MaxEventTypeLength bounds the name of an event type.
const MaxEventTypeLength = 128

var eventTypeName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:-]*$`)

// Catalog is the set of event types of a deployment, sorted by name.
type Catalog struct {
	types []EventType
	index map[string]bool
}

// NewCatalog builds a catalog, refusing names that the API could not carry.
func NewCatalog(types []EventType) (*Catalog, error) {
	c := &Catalog{index: make(map[string]bool, len(types))}
	for _, t := range types {
		if len(t.Name) > MaxEventTypeLength || !eventTypeName.MatchString(t.Name) {
			return nil, fmt.Errorf("event type %q: a name is 1 to %d of A-Z a-z 0-9 _ . : - and starts with a letter or digit", t.Name, MaxEventTypeLength)
		}
		if c.index[t.Name] {
			return nil, fmt.Errorf("event type %q is listed twice", t.Name)
		}
		c.index[t.Name] = true
		c.types = append(c.types, t)
	}
	if len(c.types) == 0 {
		return nil, fmt.Errorf("the event type catalog is empty")
	}
	sort.Slice(c.types, func(i, j int) bool { return c.types[i].Name < c.types[j].Name })
	return c, nil
}

// DefaultCatalog is the catalog of a deployment that configures none.
func DefaultCatalog() *Catalog {
	c, err := NewCatalog([]EventType{
		{"order.created", "An order was placed."},
		{"order.updated", "An order changed."},
		{"order.cancelled", "An order was cancelled."},
		{"order.fulfilled", "An order was shipped or handed over."},
		{"payment.succeeded", "A payment was captured."},
		{"payment.failed", "A payment attempt failed."},
		{"payment.refunded", "A payment was refunded, in part or whole."},
		{"customer.created", "A customer was created."},
		{"customer.updated", "A customer changed."},
		{"customer.deleted", "A customer was deleted."},
		{"invoice.created", "An invoice was issued."},
		{"invoice.paid", "An invoice was paid."},
	})
	if err != nil {
		panic(err)
	}
	return c
}

// LoadCatalog reads HOOKFERRY_EVENT_TYPES's value: a path to a file (one name per
// line, optionally followed by whitespace and a description; # starts a comment)
// or, when no such file exists, a comma-separated list of names. A value that
// names no file but looks like a path is an error, not a list: one holding / or
// \, or a single name ending in a file extension (.txt, .list, .conf, .cfg,
// .yaml, .yml, .json, any case), so that a mistyped file name does not start
// the service with a one-type catalog.
func LoadCatalog(spec string) (*Catalog, error) {
	spec = strings.TrimSpace(spec)
	if spec == "" {
		return DefaultCatalog(), nil
	}
	var types []EventType
	if data, err := os.ReadFile(spec); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if i := strings.Index(line, "#"); i >= 0 {
				line = line[:i]
			}
			line = strings.TrimSpace(line)
			if line == "" {
				continue
			}
			name, desc, _ := strings.Cut(line, " ")
			if n, d, ok := strings.Cut(line, "\t"); ok && len(n) < len(name) {
				name, desc = n, d
			}
			types = append(types, EventType{Name: name, Description: strings.TrimSpace(desc)})
		}
	} else if strings.ContainsAny(spec, "/\\") {
		return nil, fmt.Errorf("event types: %w", err)
	} else if looksLikeFile(spec) {
		return nil, fmt.Errorf("event types: %w (a single name ending in a file extension is read as a file; list event types with commas, such as %s,other.type)", err, spec)
	} else {
		for _, name := range strings.Split(spec, ",") {
			if name = strings.TrimSpace(name); name != "" {
				types = append(types, EventType{Name: name})
			}
		}
	}
	return NewCatalog(types)
}

// looksLikeFile spots a single name that was meant as a file, such as
// "event-types.txt", so that a typo is not taken for a one-type catalog.
func looksLikeFile(spec string) bool {
	if strings.Contains(spec, ",") {
		return false
	}
	for _, ext := range []string{".txt", ".list", ".conf", ".cfg", ".yaml", ".yml", ".json"} {
		if strings.HasSuffix(strings.ToLower(spec), ext) {
			return true
		}
	}
	return false
}

// Types returns the catalog's event types, sorted by name.
func (c *Catalog) Types() []EventType { return append([]EventType(nil), c.types...) }

// Has reports whether name is in the catalog.
func (c *Catalog) Has(name string) bool { return c.index[name] }

// CheckSubscription checks that eventTypes is a non-empty list of unique names
// from the catalog, naming the first entry at fault.
func (c *Catalog) CheckSubscription(eventTypes []string) error {
	if len(eventTypes) == 0 {
		return ruleErrorf(CodeInvalidSubscription, "subscription.event_types must name at least one event type")
	}
	if len(eventTypes) > MaxSubscriptionSize {
		return ruleErrorf(CodeInvalidSubscription, "subscription.event_types has %d entries, at most %d are allowed", len(eventTypes), MaxSubscriptionSize)
	}
	seen := make(map[string]bool, len(eventTypes))
	for i, name := range eventTypes {
		switch {
		case len(name) > MaxEventTypeLength:
			return ruleErrorf(CodeInvalidSubscription, "subscription.event_types[%d] is longer than %d characters", i, MaxEventTypeLength)
		case seen[name]:
			return ruleErrorf(CodeInvalidSubscription, "subscription.event_types[%d]: %q is listed twice", i, name)
		case !c.index[name]:
			return ruleErrorf(CodeInvalidSubscription, "subscription.event_types[%d]: %q is not an event type of the catalog", i, name)
		}
		seen[name] = true
	}
	return nil
}
