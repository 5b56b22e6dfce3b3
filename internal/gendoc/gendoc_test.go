package gendoc

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestSectionComparesAndRewritesTheGeneratedPart(t *testing.T) {
	const begin = "<!-- BEGIN generated -->"
	doc := func(body string) string {
		return "# title\n" + begin + "\n\n" + body + "\n" + End + "\nafter\n"
	}
	for _, tc := range []struct {
		name, file, generated string
		update                bool
		wantErr               error
		wantFile              string
	}{
		{name: "in step", file: doc("a"), generated: "a", wantFile: doc("a")},
		{name: "stale", file: doc("a"), generated: "b", wantErr: ErrStale, wantFile: doc("a")},
		{name: "stale, updated", file: doc("a"), generated: "b", update: true, wantFile: doc("b")},
		{name: "no markers", file: "# title\n", generated: "b", update: true, wantErr: errAny, wantFile: "# title\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "doc.md")
			if err := os.WriteFile(path, []byte(tc.file), 0o644); err != nil {
				t.Fatal(err)
			}
			err := Section(path, begin, tc.generated, tc.update)
			switch {
			case tc.wantErr == nil && err != nil:
				t.Fatalf("Section: %v", err)
			case tc.wantErr == errAny && err == nil, tc.wantErr != nil && tc.wantErr != errAny && !errors.Is(err, tc.wantErr):
				t.Fatalf("Section: %v, want %v", err, tc.wantErr)
			}
			got, _ := os.ReadFile(path)
			if string(got) != tc.wantFile {
				t.Errorf("file is\n%s\nwant\n%s", got, tc.wantFile)
			}
		})
	}
}

// errAny stands for any error in the table.
var errAny = errors.New("any error")
