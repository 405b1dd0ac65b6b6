package server_test

import (
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/hookferry/hookferry/auth"
	"github.com/stretchr/testify/require"
)

// TestSpecIsValid loads openapi.yaml and holds it to the house rules: a valid
// OpenAPI document; every operation described, tagged and named; every /v1
// operation guarded by a permission and answering 401, 403, 429 (the rate
// limit) and 500; every error response in the one Error shape.
func TestSpecIsValid(t *testing.T) {
	t.Parallel()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromFile("../openapi.yaml")
	require.NoError(t, err)
	require.NoError(t, doc.Validate(loader.Context))

	known := map[string]bool{}
	for _, p := range []auth.Permission{auth.PermissionWebhookManagement, auth.PermissionEventsPublish, auth.PermissionPortalSessions} {
		_, err := auth.ParsePermission(string(p))
		require.NoError(t, err)
		known[string(p)] = true
	}
	ops := 0
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			ops++
			where := method + " " + path
			require.NotEmpty(t, op.OperationID, where)
			require.NotEmpty(t, op.Summary, where)
			require.NotEmpty(t, op.Description, where)
			require.NotEmpty(t, op.Tags, where)
			for status, ref := range op.Responses.Map() {
				if status >= "400" && strings.HasPrefix(path, "/v1/") {
					schema := ref.Value.Content.Get("application/json").Schema
					require.Equal(t, "#/components/schemas/Error", schema.Ref, "%s %s", where, status)
				}
			}
			if !strings.HasPrefix(path, "/v1/") {
				require.NotNil(t, op.Security, "%s: public operations say so", where)
				continue
			}
			perm, _ := op.Extensions["x-hookferry-permission"].(string)
			require.True(t, known[perm], "%s: x-hookferry-permission %q", where, perm)
			for _, status := range []string{"401", "403", "429", "500"} {
				require.NotNil(t, op.Responses.Value(status), "%s lacks %s", where, status)
			}
		}
	}
	require.GreaterOrEqual(t, ops, 7)
}
