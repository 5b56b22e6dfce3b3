package seccomp

import (
	"fmt"
	"strings"
)

// Markdown documents the filters (docs/security.md): each kind, what it
// runs, and its calls by reason, with their argument checks.
func Markdown() string {
	var b strings.Builder
	for i, f := range Filters() {
		if i > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "#### `%s`: %d calls\n\n%s\n\n| why | calls |\n| --- | --- |\n", f.Kind, len(f.rules(false)), f.Doc)
		for _, g := range f.Groups {
			var calls []string
			for _, r := range g.Rules {
				c := "`" + r.Name + "`"
				if len(r.Args) > 0 {
					var docs []string
					for _, a := range r.Args {
						docs = append(docs, a.Doc)
					}
					c += " (" + strings.Join(docs, ", ") + ")"
				}
				calls = append(calls, c)
			}
			fmt.Fprintf(&b, "| %s | %s |\n", g.Why, strings.Join(calls, " "))
		}
	}
	return b.String()
}
