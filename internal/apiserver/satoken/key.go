// Package satoken issues and verifies ServiceAccount tokens: signed JWTs as
// upstream's TokenRequest API and legacy token Secrets produce them, the
// bearer-token authenticator that checks them on every request, and the
// OIDC discovery documents that let others verify them.
package satoken

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Key file names under the PKI directory, as kubeadm names them.
const (
	privateKeyFile = "sa.key"
	publicKeyFile  = "sa.pub"
)

// LoadOrCreateKey returns the signing key kept in pkiDir, creating it on
// first use. Servers of an HA cluster share pkiDir, so creation is
// first-writer-wins: a key written by another server is read, never
// replaced.
func LoadOrCreateKey(pkiDir string) (*rsa.PrivateKey, error) {
	keyPath := filepath.Join(pkiDir, privateKeyFile)
	key, err := readPrivateKey(keyPath)
	if errors.Is(err, fs.ErrNotExist) {
		key, err = createPrivateKey(pkiDir, keyPath)
	}
	if err != nil {
		return nil, err
	}
	if err := ensurePublicKey(filepath.Join(pkiDir, publicKeyFile), &key.PublicKey); err != nil {
		return nil, err
	}
	return key, nil
}

func readPrivateKey(path string) (*rsa.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(data)
	if blk == nil {
		return nil, fmt.Errorf("%s: no PEM block", path)
	}
	switch blk.Type {
	case "RSA PRIVATE KEY":
		k, err := x509.ParsePKCS1PrivateKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return k, nil
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		rk, ok := k.(*rsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("%s: %T is not an RSA key", path, k)
		}
		return rk, nil
	}
	return nil, fmt.Errorf("%s: unexpected PEM block %q", path, blk.Type)
}

// createPrivateKey writes a new key to a temporary file and links it into
// place, so a concurrent creator either wins or reads the winner's key.
func createPrivateKey(dir, path string) (*rsa.PrivateKey, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("generate service account key: %w", err)
	}
	data := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	tmp, err := writeTemp(dir, privateKeyFile, data, 0o600)
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return readPrivateKey(path)
		}
		return nil, fmt.Errorf("install %s: %w", path, err)
	}
	return key, nil
}

// ensurePublicKey writes pub to path unless it already holds it.
func ensurePublicKey(path string, pub *rsa.PublicKey) error {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return fmt.Errorf("marshal service account public key: %w", err)
	}
	data := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	if cur, err := os.ReadFile(path); err == nil && string(cur) == string(data) {
		return nil
	}
	tmp, err := writeTemp(filepath.Dir(path), publicKeyFile, data, 0o644)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("install %s: %w", path, err)
	}
	return nil
}

func writeTemp(dir, base string, data []byte, mode os.FileMode) (string, error) {
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return "", fmt.Errorf("write %s: %w", base, err)
	}
	name := f.Name()
	err = f.Chmod(mode)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(name)
		return "", fmt.Errorf("write %s: %w", base, err)
	}
	return name, nil
}

// KeyID is the key id upstream puts in tokens and the JWKS: the unpadded
// base64url SHA-256 of the DER (PKIX) public key.
func KeyID(pub *rsa.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("marshal public key: %w", err)
	}
	sum := sha256.Sum256(der)
	return base64.RawURLEncoding.EncodeToString(sum[:]), nil
}
