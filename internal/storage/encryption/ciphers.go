package encryption

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"

	"golang.org/x/crypto/nacl/secretbox"
)

// aescbcSealers: IV (16 bytes) followed by AES-CBC ciphertext with PKCS#7
// padding. CBC does not authenticate; a wrong key shows as bad padding or,
// rarely, as a value that does not decode.
func aescbcSealers(kc *keysConfig, path string) ([]*sealer, error) {
	names, secrets, err := decodeKeys(kc, path, 16, 24, 32)
	if err != nil {
		return nil, err
	}
	out := make([]*sealer, len(names))
	for i, name := range names {
		block, err := aes.NewCipher(secrets[i])
		if err != nil {
			return nil, fmt.Errorf("%s key %q: %w", path, name, err)
		}
		out[i] = &sealer{
			provider: "aescbc", name: name, prefix: prefixFor("aescbc", name),
			seal: func(_ string, plain []byte) ([]byte, error) { return cbcSeal(block, plain) },
			open: func(_ string, sealed []byte) ([]byte, error) { return cbcOpen(block, sealed) },
		}
	}
	return out, nil
}

func cbcSeal(block cipher.Block, plain []byte) ([]byte, error) {
	bs := block.BlockSize()
	pad := bs - len(plain)%bs
	out := make([]byte, bs+len(plain)+pad)
	iv := out[:bs]
	if _, err := rand.Read(iv); err != nil {
		return nil, err
	}
	body := out[bs:]
	copy(body, plain)
	copy(body[len(plain):], bytes.Repeat([]byte{byte(pad)}, pad))
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(body, body)
	return out, nil
}

var errPadding = errors.New("invalid padding")

func cbcOpen(block cipher.Block, sealed []byte) ([]byte, error) {
	bs := block.BlockSize()
	if len(sealed) < 2*bs {
		return nil, errShort
	}
	if len(sealed)%bs != 0 {
		return nil, errors.New("stored value is not a whole number of blocks")
	}
	iv, body := sealed[:bs], sealed[bs:]
	plain := make([]byte, len(body))
	cipher.NewCBCDecrypter(block, iv).CryptBlocks(plain, body)
	pad := int(plain[len(plain)-1])
	if pad == 0 || pad > bs {
		return nil, errPadding
	}
	for _, b := range plain[len(plain)-pad:] {
		if int(b) != pad {
			return nil, errPadding
		}
	}
	return plain[:len(plain)-pad], nil
}

// aesgcmSealers: nonce (12 bytes) followed by the GCM-sealed value, with
// the etcd key as additional authenticated data.
func aesgcmSealers(kc *keysConfig, path string) ([]*sealer, error) {
	names, secrets, err := decodeKeys(kc, path, 16, 24, 32)
	if err != nil {
		return nil, err
	}
	out := make([]*sealer, len(names))
	for i, name := range names {
		block, err := aes.NewCipher(secrets[i])
		if err != nil {
			return nil, fmt.Errorf("%s key %q: %w", path, name, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("%s key %q: %w", path, name, err)
		}
		out[i] = &sealer{
			provider: "aesgcm", name: name, prefix: prefixFor("aesgcm", name),
			seal: func(key string, plain []byte) ([]byte, error) {
				ns := aead.NonceSize()
				out := make([]byte, ns, ns+len(plain)+aead.Overhead())
				if _, err := rand.Read(out); err != nil {
					return nil, err
				}
				return aead.Seal(out, out[:ns], plain, []byte(key)), nil
			},
			open: func(key string, sealed []byte) ([]byte, error) {
				ns := aead.NonceSize()
				if len(sealed) < ns+aead.Overhead() {
					return nil, errShort
				}
				return aead.Open(nil, sealed[:ns], sealed[ns:], []byte(key))
			},
		}
	}
	return out, nil
}

// secretboxSealers: nonce (24 bytes) followed by the XSalsa20-Poly1305
// sealed value.
func secretboxSealers(kc *keysConfig, path string) ([]*sealer, error) {
	names, secrets, err := decodeKeys(kc, path, 32)
	if err != nil {
		return nil, err
	}
	out := make([]*sealer, len(names))
	for i, name := range names {
		var k [32]byte
		copy(k[:], secrets[i])
		out[i] = &sealer{
			provider: "secretbox", name: name, prefix: prefixFor("secretbox", name),
			seal: func(_ string, plain []byte) ([]byte, error) {
				var nonce [24]byte
				if _, err := rand.Read(nonce[:]); err != nil {
					return nil, err
				}
				return secretbox.Seal(nonce[:], plain, &nonce, &k), nil
			},
			open: func(_ string, sealed []byte) ([]byte, error) {
				if len(sealed) < 24+secretbox.Overhead {
					return nil, errShort
				}
				var nonce [24]byte
				copy(nonce[:], sealed)
				plain, ok := secretbox.Open(nil, sealed[24:], &nonce, &k)
				if !ok {
					return nil, errors.New("message authentication failed")
				}
				return plain, nil
			},
		}
	}
	return out, nil
}
