package bootstrapsigner

import (
	"strings"
	"testing"
)

// Known answers from kubeadm's bootstrap signer: a joining kubeadm (or
// Skiff) agent must accept what Skiff signs, and the other way round.
func TestSignMatchesUpstream(t *testing.T) {
	for _, tc := range []struct {
		content, id, secret, want string
	}{
		{"Hello from the other side. I must have called a thousand times.", "joshua", "my voice is my passcode",
			"eyJhbGciOiJIUzI1NiIsImtpZCI6Impvc2h1YSJ9..VShe2taLd-YTrmWuRkcL_8QTNDHYxQIEBsAYYiIj1_8"},
		{"", "joshua", "my voice is my passcode",
			"eyJhbGciOiJIUzI1NiIsImtpZCI6Impvc2h1YSJ9..7Ui1ALizW4jXphVUB7xUqC9vLYLL9RZeOFfVLoB7Tgk"},
		{"content", "id", "", "eyJhbGciOiJIUzI1NiIsImtpZCI6ImlkIn0..GBG9nJpyHc7Tk_iryUsRXOvX6U-19DDCA2AmlC326DU"},
		{"content", "id", strings.Repeat("x", 8), "eyJhbGciOiJIUzI1NiIsImtpZCI6ImlkIn0..pCqXr-QOqtnLik5dOn0DZu842z-u_rchSqd6B-MoOFQ"},
		{"content", "id", strings.Repeat("x", 33), "eyJhbGciOiJIUzI1NiIsImtpZCI6ImlkIn0..exPZdsbPApmX14UF7bf2KoBdZwrkzSotja4egZ60UXs"},
	} {
		got, err := Sign(tc.content, tc.id, tc.secret)
		if err != nil {
			t.Fatal(err)
		}
		if got != tc.want {
			t.Errorf("Sign(%q, %q, %q) = %q, want %q", tc.content, tc.id, tc.secret, got, tc.want)
		}
	}
}

func TestVerify(t *testing.T) {
	sig, err := Sign("kubeconfig", "abcdef", "0123456789abcdef")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name                     string
		sig, content, id, secret string
		ok                       bool
	}{
		{"valid", sig, "kubeconfig", "abcdef", "0123456789abcdef", true},
		{"other content", sig, "kubeconfig2", "abcdef", "0123456789abcdef", false},
		{"other secret", sig, "kubeconfig", "abcdef", "0123456789abcdeg", false},
		{"other id", sig, "kubeconfig", "abcdeg", "0123456789abcdef", false},
		{"tampered", sig + "x", "kubeconfig", "abcdef", "0123456789abcdef", false},
		{"empty", "", "kubeconfig", "abcdef", "0123456789abcdef", false},
	} {
		if got := Verify(tc.sig, tc.content, tc.id, tc.secret); got != tc.ok {
			t.Errorf("%s: Verify = %v, want %v", tc.name, got, tc.ok)
		}
	}
}
