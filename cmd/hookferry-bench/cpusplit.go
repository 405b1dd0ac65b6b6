package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/google/pprof/profile"
)

// componentLabel is the goroutine label that tells the bench's own CPU apart
// in its CPU profile: load (the main goroutine and all it starts: publishers,
// API calls, their connections) or receiver (the receivers' servers and the
// connections and handlers they start). Samples without it are the Go
// runtime's own goroutines, the garbage collector's mostly.
const componentLabel = "component"

// labelled runs f with the goroutine label component=name; the goroutines it
// starts inherit it.
func labelled(name string, f func()) {
	pprof.Do(context.Background(), pprof.Labels(componentLabel, name), func(context.Context) { f() })
}

// cpuScope is whose CPU a phase's meter counts beside the bench's.
type cpuScope struct {
	pids     []int  // the servers
	database string // PostgreSQL: the name of the bench's database; "" for SQLite (inside the server)
}

// benchProfile is a CPU profile of the bench process during a phase.
type benchProfile struct {
	buf bytes.Buffer
	on  bool
}

func startBenchProfile() *benchProfile {
	p := &benchProfile{}
	if err := pprof.StartCPUProfile(&p.buf); err != nil {
		logf("CPU profile of the bench: %v; its CPU is not split", err)
		return p
	}
	p.on = true
	return p
}

// stop ends the profile and sums its CPU by componentLabel ("" for none).
func (p *benchProfile) stop() map[string]time.Duration {
	if p == nil || !p.on {
		return nil
	}
	pprof.StopCPUProfile()
	p.on = false
	prof, err := profile.Parse(&p.buf)
	if err != nil {
		logf("CPU profile of the bench: %v", err)
		return nil
	}
	idx := -1
	for i, st := range prof.SampleType {
		if st.Type == "cpu" && st.Unit == "nanoseconds" {
			idx = i
		}
	}
	if idx < 0 {
		logf("CPU profile of the bench has no cpu/nanoseconds samples")
		return nil
	}
	out := map[string]time.Duration{}
	for _, s := range prof.Sample {
		var c string
		if v := s.Label[componentLabel]; len(v) > 0 {
			c = v[0]
		}
		out[c] += time.Duration(s.Value[idx])
	}
	return out
}

// postgresCPU is the CPU time used so far by the PostgreSQL processes that
// work for database: its backends and autovacuum workers, and the shared
// ones (postmaster, checkpointer, WAL writer, …), by pid. Backends of other
// databases are left out; a process that exits takes its CPU with it.
func postgresCPU(database string) map[int]time.Duration {
	out := map[int]time.Duration{}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return out
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if err != nil || strings.TrimSpace(string(comm)) != "postgres" {
			continue
		}
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil || !postgresServes(string(cmdline), database) {
			continue
		}
		out[pid] = processCPU(pid)
	}
	return out
}

// postgresServes says whether the PostgreSQL process of this command line
// (its ps title, e.g. "postgres: 15/main: postgres hfbench_x 127.0.0.1(5000)
// idle" or "postgres: 15/main: walwriter") works for database.
func postgresServes(cmdline, database string) bool {
	title, ok := strings.CutPrefix(strings.TrimSpace(strings.ReplaceAll(cmdline, "\x00", " ")), "postgres: ")
	if !ok {
		return true // the postmaster, with its own command line
	}
	f := strings.Fields(title)
	if len(f) > 0 && strings.HasSuffix(f[0], ":") { // cluster_name
		f = f[1:]
	}
	switch {
	case len(f) >= 3 && f[0] == "autovacuum" && f[1] == "worker":
		return f[2] == database
	case len(f) >= 3 && (strings.Contains(f[2], "(") || f[2] == "[local]"): // user database host(port) state
		return f[1] == database
	}
	return true // a background process every database shares
}

// sinceStart is the CPU the processes used between two readings; a process
// new in after counts from 0, one gone is lost.
func sinceStart(before, after map[int]time.Duration) time.Duration {
	var t time.Duration
	for pid, a := range after {
		t += a - before[pid]
	}
	return t
}

// perDeliveredLine says what each component used per delivered delivery.
func (c CPU) perDeliveredLine() string {
	u := c.PerDeliveredUS
	if u == nil {
		return ""
	}
	line := fmt.Sprintf("CPU µs per delivered delivery: server %.0f, database %.0f, load %.0f, receiver %.0f, bench runtime (GC) %.0f",
		u.Server, u.Database, u.Load, u.Receiver, u.Runtime)
	if c.BenchS > 0 {
		line += fmt.Sprintf(" (the bench's profile sampled %.0f%% of its CPU)", 100*(c.LoadS+c.ReceiverS+c.RuntimeS)/c.BenchS)
	}
	return line
}
