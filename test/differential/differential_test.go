package differential

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/skiff-dev/skiff/internal/apiserver"
	"github.com/skiff-dev/skiff/internal/apiserver/authn"
	"github.com/skiff-dev/skiff/internal/apiserver/satoken"
	"github.com/skiff-dev/skiff/internal/testserver"
)

// subset is true when only discovery and the hand-written corpus (the
// issue's cases and request rules) should run, without the generated
// mutations: DIFF_SUBSET=1, for CI's time budget.
func subset() bool { return os.Getenv("DIFF_SUBSET") == "1" }

// TestDifferential starts both servers once and compares discovery, the
// hand-written corpus and the generated mutations.
func TestDifferential(t *testing.T) {
	binDir(t)
	rep := &reporter{}
	up, sk := startUpstream(t), startSkiff(t)
	prepare(t, up, sk)
	t.Run("discovery", func(t *testing.T) { testDiscovery(t, up, sk, rep) })
	t.Run("corpus", func(t *testing.T) { testCorpus(t, up, sk, rep) })
	if !subset() {
		t.Run("mutations", func(t *testing.T) { testMutations(t, up, sk, rep) })
	}
	if err := rep.write(os.Getenv("DIFF_REPORT")); err != nil {
		t.Error(err)
	}
}

// startSkiff runs Skiff's API server in-process as skiff server
// configures it (authorization, admission, service-account tokens, API
// Priority and Fairness), with upstream's default service range so that
// allocated and refused addresses agree. Requests come from an admin in
// system:masters, as the upstream side's client certificate.
func startSkiff(t *testing.T) *endpoint {
	key, err := satoken.LoadOrCreateKey(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	issuer, err := satoken.NewIssuer("https://kubernetes.default.svc", key)
	if err != nil {
		t.Fatal(err)
	}
	const token = "differential-admin"
	admin := func(tok string) (*authn.User, bool) {
		if tok != token {
			return nil, false
		}
		return &authn.User{Name: "admin", Groups: []string{"system:masters", "system:authenticated"}}, true
	}
	s := testserver.StartWith(t, testserver.Options{
		ServiceCIDR:          "10.0.0.0/24",
		Authenticator:        authn.NewBearerToken(admin),
		AccessControl:        true,
		ServiceAccountTokens: &apiserver.ServiceAccountTokens{Issuer: issuer},
		FlowControl:          apiserver.FlowControlConfig{Enabled: true},
	})
	return &endpoint{name: "skiff", base: s.URL, token: token, client: &http.Client{Timeout: 60 * time.Second}}
}

// reporter collects the differences of every section for DIFF_REPORT.
type reporter struct{ b strings.Builder }

func (r *reporter) section(name string, total, tolerated int, diffs []string) {
	fmt.Fprintf(&r.b, "== %s: %d checked, %d agree, %d differ, %d more allowlisted\n",
		name, total, total-len(diffs)-tolerated, len(diffs), tolerated)
	for _, d := range diffs {
		fmt.Fprintf(&r.b, "%s\n", d)
	}
	r.b.WriteString("\n")
}

func (r *reporter) write(path string) error {
	if path == "" {
		return nil
	}
	if err := os.WriteFile(path, []byte(r.b.String()), 0o644); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}
