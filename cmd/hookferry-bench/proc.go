package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of /proc CPU times: 100 on every Linux
// architecture Go supports.
const clockTicks = 100

// peakRSSKiB is the process's peak resident set (VmHWM), in KiB.
func peakRSSKiB(pid int) (int64, error) { return statusKiB(pid, "VmHWM") }

// statusKiB is a field of /proc/PID/status in kB, such as VmRSS.
func statusKiB(pid int, field string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			return strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
		}
	}
	return 0, fmt.Errorf("/proc/%d/status has no %s", pid, field)
}

// processCPU is the user+system CPU time the process has used.
func processCPU(pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The fields after the command name, which may hold spaces, start at state.
	_, rest, ok := strings.Cut(string(data), ") ")
	if !ok {
		return 0
	}
	f := strings.Fields(rest)
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / clockTicks
}

// selfCPU is the user+system CPU time the bench (load and receiver) has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// machineCPU reads the busy and total jiffies of all CPUs from /proc/stat.
func machineCPU() (busy, total int64) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0, 0
	}
	for i, v := range f[1:] {
		n, _ := strconv.ParseInt(v, 10, 64)
		if i >= 8 { // guest times are already in user and nice
			break
		}
		total += n
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return busy, total
}

// cpuMeter measures the CPU used during a phase: the servers', the
// database's (PostgreSQL), the bench's (split by a CPU profile of it) and the
// whole machine's.
type cpuMeter struct {
	scope        cpuScope
	server, self time.Duration
	database     map[int]time.Duration
	busy, total  int64
	prof         *benchProfile
}

// serversCPU is the CPU time the processes have used in all.
func serversCPU(pids []int) time.Duration {
	var t time.Duration
	for _, pid := range pids {
		t += processCPU(pid)
	}
	return t
}

// CPU is what a phase used, in CPU seconds: the servers (all instances), the
// database (PostgreSQL: see postgresCPU; SQLite runs inside the server), the
// bench (load and receiver), everything else (other PostgreSQL backends, and
// whatever else runs), and how busy the machine's CPUs were.
type CPU struct {
	ServerS        float64 `json:"server_s"`
	DatabaseS      float64 `json:"database_s"`
	BenchS         float64 `json:"bench_s"`
	OtherS         float64 `json:"other_s"`
	MachineBusyPct float64 `json:"machine_busy_pct"`
	// The bench's CPU profile, by goroutine label (componentLabel): load,
	// receiver, and the runtime's own goroutines (GC mostly). Their sum is
	// the profile's, which samples a little less than BenchS.
	LoadS     float64 `json:"load_s"`
	ReceiverS float64 `json:"receiver_s"`
	RuntimeS  float64 `json:"bench_runtime_s"`
	// PerDeliveredUS is each component's CPU per delivered delivery, in µs.
	PerDeliveredUS *CPUPerDelivered `json:"us_per_delivered,omitempty"`
}

// CPUPerDelivered is CPU microseconds per delivered delivery.
type CPUPerDelivered struct {
	Server   float64 `json:"server"`
	Database float64 `json:"database"`
	Load     float64 `json:"load"`
	Receiver float64 `json:"receiver"`
	Runtime  float64 `json:"bench_runtime"`
}

func startCPU(scope cpuScope) *cpuMeter {
	m := &cpuMeter{scope: scope, server: serversCPU(scope.pids), self: selfCPU(), prof: startBenchProfile()}
	if scope.database != "" {
		m.database = postgresCPU(scope.database)
	}
	m.busy, m.total = machineCPU()
	return m
}

func (m *cpuMeter) stop() CPU {
	out := CPU{
		ServerS: round2((serversCPU(m.scope.pids) - m.server).Seconds()),
		BenchS:  round2((selfCPU() - m.self).Seconds()),
	}
	if m.database != nil {
		out.DatabaseS = round2(sinceStart(m.database, postgresCPU(m.scope.database)).Seconds())
	}
	busy, total := machineCPU()
	if d := total - m.total; d > 0 {
		out.MachineBusyPct = round2(100 * float64(busy-m.busy) / float64(d))
		out.OtherS = round2(max(float64(busy-m.busy)/clockTicks-out.ServerS-out.DatabaseS-out.BenchS, 0))
	}
	if split := m.prof.stop(); split != nil {
		out.LoadS, out.ReceiverS = round2(split["load"].Seconds()), round2(split["receiver"].Seconds())
		for c, t := range split {
			if c != "load" && c != "receiver" {
				out.RuntimeS += t.Seconds()
			}
		}
		out.RuntimeS = round2(out.RuntimeS)
	}
	return out
}

// perDelivered fills PerDeliveredUS for n delivered deliveries.
func (c *CPU) perDelivered(n int) {
	if n <= 0 {
		return
	}
	us := func(s float64) float64 { return round2(s * 1e6 / float64(n)) }
	c.PerDeliveredUS = &CPUPerDelivered{Server: us(c.ServerS), Database: us(c.DatabaseS), Load: us(c.LoadS), Receiver: us(c.ReceiverS), Runtime: us(c.RuntimeS)}
}

// busyPct samples how busy the machine's CPUs are over d.
func busyPct(d time.Duration) float64 {
	b0, t0 := machineCPU()
	time.Sleep(d)
	b1, t1 := machineCPU()
	if t1 <= t0 {
		return 0
	}
	return round2(100 * float64(b1-b0) / float64(t1-t0))
}

// perfRecord samples the server's stacks with `perf record` until stop; a
// missing perf is reported, not fatal.
type perfRecord struct{ cmd *exec.Cmd }

func startPerf(pid int, out string) (*perfRecord, error) {
	cmd := exec.Command("perf", "record", "-q", "-F", "499", "-g", "-p", strconv.Itoa(pid), "-o", out)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("perf record: %w", err)
	}
	time.Sleep(200 * time.Millisecond) // let it attach before the load starts
	return &perfRecord{cmd: cmd}, nil
}

func (p *perfRecord) stop() {
	if p == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGINT)
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
}
