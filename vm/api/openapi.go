package api

import (
	_ "embed"
	"fmt"
	"sort"
	"strings"
)

// openapiDoc is openapi.yaml; a string, so nobody can change it.
//
//go:embed openapi.yaml
var openapiDoc string

// OpenAPIDocument returns this API's OpenAPI 3 document (YAML).
func OpenAPIDocument() string { return openapiDoc }

// documentedOperation is one path and method of the OpenAPI document with
// the statuses it lists.
type documentedOperation struct {
	Path     string
	Method   string
	Statuses []string
}

// parseOpenAPIPaths reads the operations under the document's top-level
// "paths:" key. It is a line scanner for the layout openapi.yaml keeps
// (two-space indents: paths at 2, methods at 4, status codes at 8), not a
// YAML parser; it fails on lines it cannot place.
func parseOpenAPIPaths(doc string) ([]documentedOperation, error) {
	var ops []documentedOperation
	inPaths, inResponses := false, false
	path := ""
	for i, raw := range strings.Split(doc, "\n") {
		line := strings.TrimRight(raw, " \r")
		trimmed := strings.TrimLeft(line, " ")
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		indent := len(line) - len(trimmed)
		if indent == 0 {
			inPaths = line == "paths:"
			continue
		}
		if !inPaths {
			continue
		}
		key, isKey := strings.CutSuffix(trimmed, ":")
		switch {
		case indent == 2:
			if !isKey || !strings.HasPrefix(key, "/") {
				return nil, fmt.Errorf("openapi.yaml line %d: want a path, got %q", i+1, trimmed)
			}
			path = key
		case indent == 4 && isKey:
			switch key {
			case "get", "put", "post", "delete", "patch", "head", "options":
			default:
				return nil, fmt.Errorf("openapi.yaml line %d: want an HTTP method, got %q", i+1, trimmed)
			}
			if path == "" {
				return nil, fmt.Errorf("openapi.yaml line %d: method outside a path", i+1)
			}
			ops = append(ops, documentedOperation{Path: path, Method: strings.ToUpper(key)})
			inResponses = false
		case indent == 6:
			inResponses = trimmed == "responses:"
		case indent == 8 && inResponses && isKey:
			if len(ops) == 0 {
				return nil, fmt.Errorf("openapi.yaml line %d: response outside an operation", i+1)
			}
			op := &ops[len(ops)-1]
			op.Statuses = append(op.Statuses, strings.Trim(key, `"'`))
		}
	}
	for _, op := range ops {
		sort.Strings(op.Statuses)
	}
	return ops, nil
}
