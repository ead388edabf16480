package cluster

import (
	"path/filepath"

	"github.com/skiff-dev/skiff/internal/apiserver"
	"github.com/skiff-dev/skiff/internal/apiserver/satoken"
)

// DefaultServiceAccountIssuer is the issuer of ServiceAccount tokens unless
// --service-account-issuer says otherwise, as kubeadm configures it.
const DefaultServiceAccountIssuer = "https://kubernetes.default.svc"

// serviceAccountTokens loads (or, in a data dir from before tokens existed,
// creates) the signing key every server of the cluster shares under
// DIR/pki.
func serviceAccountTokens(cfg ServerConfig) (*apiserver.ServiceAccountTokens, error) {
	key, err := satoken.LoadOrCreateKey(filepath.Join(cfg.DataDir, "pki"))
	if err != nil {
		return nil, err
	}
	issuer := cfg.ServiceAccountIssuer
	if issuer == "" {
		issuer = DefaultServiceAccountIssuer
	}
	iss, err := satoken.NewIssuer(issuer, key)
	if err != nil {
		return nil, err
	}
	return &apiserver.ServiceAccountTokens{
		Issuer:           iss,
		MaxExpiration:    cfg.ServiceAccountMaxTokenExpiration,
		ExtendExpiration: cfg.ServiceAccountExtendTokenExpiration,
	}, nil
}
