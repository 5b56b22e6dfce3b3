package api

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"
)

// BenchmarkPing measures vmm.ping round trips over one kept-alive
// connection, reporting the p50 and p99 latency.
func BenchmarkPing(b *testing.B) {
	s, _ := startFakeServer(b, Options{})
	c := NewClient(s.SocketPath())
	defer c.CloseIdleConnections()
	ctx := context.Background()
	if _, err := c.Ping(ctx); err != nil { // open the connection
		b.Fatal(err)
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		if _, err := c.Ping(ctx); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	reportPercentiles(b, lat)
}

// BenchmarkPingConcurrent16 measures vmm.ping round trips from 16 clients
// at once, each on its own connection, reporting the p50 and p99 latency
// of single requests. ns/op is wall time divided by all requests.
func BenchmarkPingConcurrent16(b *testing.B) {
	const clients = 16
	s, _ := startFakeServer(b, Options{})
	ctx := context.Background()
	cs := make([]*Client, clients)
	for i := range cs {
		cs[i] = NewClient(s.SocketPath())
		defer cs[i].CloseIdleConnections()
		if _, err := cs[i].Ping(ctx); err != nil {
			b.Fatal(err)
		}
	}
	per := (b.N + clients - 1) / clients
	lats := make([][]time.Duration, clients)
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	b.ResetTimer()
	for i, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]time.Duration, 0, per)
			for range per {
				t0 := time.Now()
				if _, err := c.Ping(ctx); err != nil {
					errs <- err
					return
				}
				lat = append(lat, time.Since(t0))
			}
			lats[i] = lat
		}()
	}
	wg.Wait()
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	reportPercentiles(b, slices.Concat(lats...))
}

// reportPercentiles adds p50 and p99 latency metrics in microseconds.
func reportPercentiles(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	at := func(q float64) float64 {
		return float64(lat[int(q*float64(len(lat)-1))].Nanoseconds()) / 1e3
	}
	b.ReportMetric(at(0.50), "p50-µs")
	b.ReportMetric(at(0.99), "p99-µs")
}
