package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"maps"
	"math/big"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

// Receiver is the local HTTPS endpoint every webhook of the bench points at.
// It answers 204 at once and records, per delivery, when it arrived and when
// the bench published it.
type Receiver struct {
	URL    string // https://127.0.0.1:PORT
	CAFile string // PEM of its self-signed certificate

	epoch time.Time
	srv   *http.Server

	mu     sync.Mutex
	seen   map[string]bool       // webhook-id + path
	phases map[string]*Collector // by name: the phases collecting now
	strays int                   // deliveries of no current phase, or unreadable
	protos map[string]int
}

// Collector gathers the deliveries of one phase.
type Collector struct {
	name       string
	expected   int
	got        int
	duplicates int
	latencies  []time.Duration // publish -> arrival, first arrival of each delivery
	arrived    map[int64]bool  // the events' seq that arrived
	last       time.Duration   // latest first arrival, since the epoch
	done       chan struct{}
	closed     bool
}

// envelope is the part of the delivered body the receiver reads.
type envelope struct {
	Data struct {
		SentNS int64  `json:"sent_ns"` // since the bench's epoch (monotonic)
		Seq    int64  `json:"seq"`
		Phase  string `json:"phase"`
	} `json:"data"`
}

// identity is the certificate every receiver of the bench serves, and the
// PEM file of it that the server is told to trust.
type identity struct {
	cert   tls.Certificate
	caFile string
}

// newIdentity makes a fresh self-signed ECDSA certificate for 127.0.0.1 and
// writes it to dir for the server to trust.
func newIdentity(dir string) (*identity, error) {
	cert, certPEM, err := selfSigned()
	if err != nil {
		return nil, err
	}
	caFile := dir + "/receiver-ca.pem"
	if err := os.WriteFile(caFile, certPEM, 0o600); err != nil {
		return nil, err
	}
	return &identity{cert: cert, caFile: caFile}, nil
}

// serveTLS serves h on 127.0.0.1:0 over HTTP/1.1 and HTTP/2 with id's
// certificate, and returns the server and its https:// URL.
func serveTLS(id *identity, h http.Handler) (*http.Server, string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetHTTP2(true)
	srv := &http.Server{
		Handler:           h,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{id.cert}, MinVersion: tls.VersionTLS12},
		Protocols:         &protocols,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	go labelled("receiver", func() { _ = srv.ServeTLS(ln, "", "") })
	return srv, "https://" + ln.Addr().String(), nil
}

// startReceiver starts the fast receiver on 127.0.0.1:0.
func startReceiver(id *identity, epoch time.Time) (*Receiver, error) {
	r := &Receiver{CAFile: id.caFile, epoch: epoch, seen: map[string]bool{}, protos: map[string]int{}, phases: map[string]*Collector{}}
	srv, url, err := serveTLS(id, http.HandlerFunc(r.serveHTTP))
	if err != nil {
		return nil, err
	}
	r.srv, r.URL = srv, url
	return r, nil
}

func selfSigned() (tls.Certificate, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "hookferry-bench receiver"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	cert, err := tls.X509KeyPair(certPEM, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
	return cert, certPEM, err
}

func (r *Receiver) serveHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	arrived := time.Since(r.epoch)
	w.WriteHeader(http.StatusNoContent)
	var env envelope
	if err == nil {
		err = json.Unmarshal(body, &env)
	}
	key := req.Header.Get("Webhook-Id") + "|" + req.URL.Path

	r.mu.Lock()
	defer r.mu.Unlock()
	r.protos[req.Proto]++
	c := r.phases[env.Data.Phase]
	if err != nil || c == nil {
		r.strays++
		return
	}
	if r.seen[key] {
		c.duplicates++
		return
	}
	r.seen[key] = true
	c.got++
	c.arrived[env.Data.Seq] = true
	c.latencies = append(c.latencies, arrived-time.Duration(env.Data.SentNS))
	c.last = max(c.last, arrived)
	c.closeIfDoneLocked()
}

// begin starts collecting the deliveries of a phase, and stops collecting
// those of the phases before: expected is how many it should see unless
// setExpected corrects it.
func (r *Receiver) begin(name string, expected int) *Collector {
	r.mu.Lock()
	clear(r.phases)
	r.mu.Unlock()
	return r.add(name, expected)
}

// add starts collecting the deliveries of a phase beside those collecting
// already (phases that run at once tell their deliveries apart by name).
func (r *Receiver) add(name string, expected int) *Collector {
	c := &Collector{name: name, expected: expected, done: make(chan struct{}),
		latencies: make([]time.Duration, 0, expected), arrived: make(map[int64]bool, expected)}
	r.mu.Lock()
	r.phases[name] = c
	r.mu.Unlock()
	return c
}

// setExpected corrects how many deliveries the phase queued (publishes may fail).
func (r *Receiver) setExpected(c *Collector, n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c.expected = n
	c.closeIfDoneLocked()
}

func (c *Collector) closeIfDoneLocked() {
	if !c.closed && c.got >= c.expected {
		c.closed = true
		close(c.done)
	}
}

// wait blocks until every expected delivery arrived or the deadline passes.
func (r *Receiver) wait(ctx context.Context, c *Collector, timeout time.Duration) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-c.done:
	case <-t.C:
	case <-ctx.Done():
	}
}

// snapshot copies what the phase gathered so far.
func (r *Receiver) snapshot(c *Collector) (got, expected, duplicates int, latencies []time.Duration, last time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return c.got, c.expected, c.duplicates, append([]time.Duration(nil), c.latencies...), c.last
}

// progress is how many of the phase's deliveries arrived (first arrivals),
// how many again, and when the latest first arrival came (since the epoch).
func (r *Receiver) progress(c *Collector) (got, duplicates int, last time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return c.got, c.duplicates, c.last
}

// missing lists, of the events sent (by seq, when since the epoch), those
// that did not arrive in c, each as how long it has been on its way by now.
func (r *Receiver) missing(c *Collector, sent map[int64]time.Duration) []time.Duration {
	now := time.Since(r.epoch)
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []time.Duration
	for seq, at := range sent {
		if !c.arrived[seq] {
			out = append(out, now-at)
		}
	}
	return out
}

// end stops collecting for the phases: what arrives for them later is a stray.
func (r *Receiver) end(cs ...*Collector) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range cs {
		if r.phases[c.name] == c {
			delete(r.phases, c.name)
		}
	}
}

// strayCount is how many requests belonged to no running phase or did not parse.
func (r *Receiver) strayCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.strays
}

// protocols says which HTTP versions the deliveries came over, e.g. "HTTP/2.0=20500".
func (r *Receiver) protocols() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var parts []string
	for _, p := range slices.Sorted(maps.Keys(r.protos)) {
		parts = append(parts, fmt.Sprintf("%s=%d", p, r.protos[p]))
	}
	return strings.Join(parts, " ")
}

func (r *Receiver) close() { _ = r.srv.Close() }
