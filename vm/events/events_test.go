package events

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestMonitorWritesCloudHypervisorsPrettyJSONEvents(t *testing.T) {
	var buf bytes.Buffer
	m := New(&buf, time.Now().Add(-1500*time.Millisecond))
	m.Emit(SourceVM, Booted, nil)
	m.Emit(SourceVM, Resized, map[string]string{"desired_vcpus": "8"})
	parts := strings.Split(strings.TrimSuffix(buf.String(), "\n\n"), "\n\n")
	if len(parts) != 2 {
		t.Fatalf("%d events in %q", len(parts), buf.String())
	}
	if !strings.HasPrefix(parts[0], "{\n  \"timestamp\": {\n    \"secs\": 1,\n    \"nanos\": ") ||
		!strings.HasSuffix(parts[0], "\"source\": \"vm\",\n  \"event\": \"booted\",\n  \"properties\": null\n}") {
		t.Errorf("first event:\n%s", parts[0])
	}
	var ev struct {
		Timestamp  struct{ Secs, Nanos uint64 }
		Source     string
		Event      string
		Properties map[string]string
	}
	if err := json.Unmarshal([]byte(parts[1]), &ev); err != nil || ev.Event != "resized" || ev.Properties["desired_vcpus"] != "8" {
		t.Errorf("second event %+v, %v", ev, err)
	}
}
