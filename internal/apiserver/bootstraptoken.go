package apiserver

import (
	"crypto/subtle"
	"regexp"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/skiff-dev/skiff/internal/apiserver/authn"
)

// Bootstrap tokens (kubeadm's format) let a new node authenticate once to
// ask for its certificate: "<id>.<secret>", stored as the Secret
// kube-system/bootstrap-token-<id>.
var bootstrapTokenRE = regexp.MustCompile(`^([a-z0-9]{6})\.([a-z0-9]{16})$`)

const (
	bootstrapGroup      = "system:bootstrappers"
	bootstrapUserPrefix = "system:bootstrap:"
)

// bootstrapTokenUser authenticates a bootstrap token against its Secret in
// the watch cache: right secret, not expired, usable for authentication.
func (s *Server) bootstrapTokenUser(token string) (*authn.User, bool) {
	m := bootstrapTokenRE.FindStringSubmatch(token)
	if m == nil {
		return nil, false
	}
	id, secret := m[1], m[2]
	res := s.resources[corev1.SchemeGroupVersion.WithResource("secrets")]
	e, ok := res.cache.Get(res.key("kube-system", "bootstrap-token-"+id))
	if !ok {
		return nil, false
	}
	sec, ok := e.Obj.(*corev1.Secret)
	if !ok || sec.Type != corev1.SecretTypeBootstrapToken || sec.DeletionTimestamp != nil {
		return nil, false
	}
	if subtle.ConstantTimeCompare(sec.Data["token-secret"], []byte(secret)) != 1 || string(sec.Data["token-id"]) != id {
		return nil, false
	}
	if string(sec.Data["usage-bootstrap-authentication"]) != "true" {
		return nil, false
	}
	if exp := string(sec.Data["expiration"]); exp != "" {
		t, err := time.Parse(time.RFC3339, exp)
		if err != nil || time.Now().After(t) {
			return nil, false
		}
	}
	groups := []string{bootstrapGroup}
	for _, g := range strings.Split(string(sec.Data["auth-extra-groups"]), ",") {
		if g = strings.TrimSpace(g); g != "" {
			groups = append(groups, g)
		}
	}
	return &authn.User{Name: bootstrapUserPrefix + id, Groups: append(groups, "system:authenticated")}, true
}
