package storage

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// writeCert writes a certificate (signed by parent, or self-signed when
// parent is nil) and its key as PEM files named name.crt and name.key.
func writeCert(t *testing.T, dir, name string, tmpl *x509.Certificate, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// testPKI writes ca, server (for 127.0.0.1) and client certificates.
func testPKI(t *testing.T) string {
	dir := t.TempDir()
	now := time.Now()
	ca, caKey := writeCert(t, dir, "ca", &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "etcd-ca"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}, nil, nil)
	writeCert(t, dir, "server", &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "etcd"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, ca, caKey)
	writeCert(t, dir, "client", &x509.Certificate{
		SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "skiff"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, ca, caKey)
	return dir
}

// startTLSEtcd runs an etcd that serves clients only over TLS and only to
// holders of a certificate signed by the test CA.
func startTLSEtcd(t *testing.T, pki string) string {
	t.Helper()
	cfg := embed.NewConfig()
	cfg.Dir = filepath.Join(t.TempDir(), "etcd")
	cfg.Name = "tls"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	u := url.URL{Scheme: "https", Host: "127.0.0.1:0"}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{u}, []url.URL{u}
	cfg.ListenPeerUrls = nil
	cfg.AdvertisePeerUrls = []url.URL{legacyPeerURL}
	cfg.InitialCluster = cfg.Name + "=" + legacyPeerURL.String()
	cfg.TickMs, cfg.ElectionMs = 10, 100
	cfg.ClientTLSInfo.CertFile = filepath.Join(pki, "server.crt")
	cfg.ClientTLSInfo.KeyFile = filepath.Join(pki, "server.key")
	cfg.ClientTLSInfo.TrustedCAFile = filepath.Join(pki, "ca.crt")
	cfg.ClientTLSInfo.ClientCertAuth = true
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(30 * time.Second):
		t.Fatal("TLS etcd not ready")
	}
	return "https://" + e.Clients[0].Addr().String()
}

func TestConnectExternalTLS(t *testing.T) {
	pki := testPKI(t)
	endpoint := startTLSEtcd(t, pki)
	f := func(name string) string { return filepath.Join(pki, name) }

	c, err := ConnectExternal([]string{endpoint}, TLSFiles{CAFile: f("ca.crt"), CertFile: f("client.crt"), KeyFile: f("client.key")})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Put(ctx, "/k", "v"); err != nil {
		t.Fatalf("put with a client certificate: %v", err)
	}

	// Without a client certificate etcd refuses the connection.
	bare, err := ConnectExternal([]string{endpoint}, TLSFiles{CAFile: f("ca.crt")})
	if err != nil {
		t.Fatal(err)
	}
	defer bare.Close()
	short, cancel2 := context.WithTimeout(context.Background(), time.Second)
	defer cancel2()
	if _, err := bare.Get(short, "/k"); err == nil {
		t.Error("etcd answered a client without a certificate")
	}

	for name, files := range map[string]TLSFiles{
		"cert without key": {CAFile: f("ca.crt"), CertFile: f("client.crt")},
		"missing CA":       {CAFile: f("nope.crt"), CertFile: f("client.crt"), KeyFile: f("client.key")},
	} {
		if c, err := ConnectExternal([]string{endpoint}, files); err == nil {
			c.Close()
			t.Errorf("%s: accepted", name)
		}
	}
}
