// Command receiver is a tiny HTTPS webhook receiver for trying hookferry on
// one machine. It is an example, not a production receiver.
//
// At start it makes a self-signed ECDSA certificate for 127.0.0.1, ::1 and
// localhost, writes it as PEM to -ca-out (give that file to the server as
// HOOKFERRY_DELIVERY_CA_FILE) and listens on -addr. For every request it prints
// one line: the time, the webhook-id and webhook-timestamp headers, the event
// type and data of the JSON envelope, the signature verdict and its answer:
//
//	15:04:05.000 webhook-id=evt_… webhook-timestamp=1700000000 type=order.created data={"order_id":"1042"} signature OK -> 204
//
// The signature is checked with the Standard Webhooks reference library
// against the secret in -secret-file (whsec_…), which is read again for every
// request, so it can be written after the receiver started. The verdict is
// "signature OK" (answer 204), "signature INVALID: …" (answer 400), or
// "unverified: no secret yet" when the file is missing or empty (answer 204).
// A secret file that cannot be read or decoded answers 500.
//
// -fail N answers 503 to the first N requests, whatever their signature, to
// watch hookferry retry.
//
//	go run ./examples/receiver -addr 127.0.0.1:9443 -ca-out receiver-ca.pem -secret-file receiver-secret
package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// maxBody bounds what one request may send (hookferry's own limit is 256 KiB
// of data).
const maxBody = 1 << 20

func main() {
	addr := flag.String("addr", "127.0.0.1:9443", "listen address")
	caOut := flag.String("ca-out", "receiver-ca.pem", "write the receiver's self-signed certificate (PEM) here, for HOOKFERRY_DELIVERY_CA_FILE")
	secretFile := flag.String("secret-file", "receiver-secret", "file holding the webhook's signing secret (whsec_…), read on every request")
	fail := flag.Int("fail", 0, "answer 503 to the first N requests")
	flag.Parse()
	log.SetFlags(0)

	cert, certPEM, err := selfSigned()
	if err != nil {
		log.Fatalf("receiver: certificate: %v", err)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatalf("receiver: %v", err)
	}
	if err := writeFileAtomic(*caOut, certPEM); err != nil {
		log.Fatalf("receiver: %v", err)
	}
	r := &receiver{secretFile: *secretFile}
	r.failLeft.Store(int64(*fail))
	srv := &http.Server{
		Handler:           r,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: 10 * time.Second,
	}
	log.Printf("receiver: listening on https://%s/ (certificate in %s, secret read from %s)", ln.Addr(), *caOut, *secretFile)
	log.Fatal(srv.ServeTLS(ln, "", ""))
}

type receiver struct {
	secretFile string
	failLeft   atomic.Int64 // requests still to answer 503
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, maxBody))
	if err != nil {
		r.print(req, body, "unreadable body: "+err.Error(), http.StatusBadRequest)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	verdict, status := r.verify(body, req.Header)
	if r.failLeft.Add(-1) >= 0 {
		status = http.StatusServiceUnavailable
		verdict += " (-fail)"
	}
	r.print(req, body, verdict, status)
	w.WriteHeader(status)
}

// verify checks the signature with the secret in the secret file.
func (r *receiver) verify(body []byte, h http.Header) (verdict string, status int) {
	raw, err := os.ReadFile(r.secretFile)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && len(bytes.TrimSpace(raw)) == 0) {
		return "unverified: no secret yet", http.StatusNoContent
	}
	if err != nil {
		return "cannot verify: " + err.Error(), http.StatusInternalServerError
	}
	wh, err := standardwebhooks.NewWebhook(string(bytes.TrimSpace(raw)))
	if err != nil {
		return "cannot verify: secret file " + r.secretFile + ": " + err.Error(), http.StatusInternalServerError
	}
	if err := wh.Verify(body, h); err != nil {
		return "signature INVALID: " + err.Error(), http.StatusBadRequest
	}
	return "signature OK", http.StatusNoContent
}

// print writes the request's line on stdout.
func (r *receiver) print(req *http.Request, body []byte, verdict string, status int) {
	var env struct {
		Type string          `json:"type"`
		Data json.RawMessage `json:"data"`
	}
	typ, data := "?", string(body)
	if json.Unmarshal(body, &env) == nil && env.Type != "" {
		typ, data = env.Type, string(env.Data)
	}
	if len(data) > 200 {
		data = data[:200] + "…"
	}
	fmt.Printf("%s webhook-id=%s webhook-timestamp=%s type=%s data=%s %s -> %d\n",
		time.Now().Format("15:04:05.000"), orDash(req.Header.Get("webhook-id")), orDash(req.Header.Get("webhook-timestamp")),
		typ, strings.Join(strings.Fields(data), " "), verdict, status)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// selfSigned makes a certificate for 127.0.0.1, ::1 and localhost that is its
// own root: trusting its PEM is enough to verify it.
func selfSigned() (tls.Certificate, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "hookferry example receiver"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(30 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	cert := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	return cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

// writeFileAtomic writes data to path through a temporary file and a rename,
// so a reader never sees half a file.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".receiver-ca-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // fails harmlessly after the rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
