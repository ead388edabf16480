package cluster

import (
	"context"

	"k8s.io/client-go/informers"

	"github.com/skiff-dev/skiff/internal/apiserver/satoken"
	"github.com/skiff-dev/skiff/internal/controllers/serviceaccounttoken"
)

// startTokensController runs, in the server that holds the ServiceAccount
// signing key, upstream's tokens controller, which fills the
// service-account-token Secrets users create. It acts as the server's
// admin, like the CSR signer; it is one of the controllers, so
// DisableControllers turns it off.
func (s *Server) startTokensController(ctx context.Context, issuer *satoken.Issuer) error {
	if s.cfg.DisableControllers {
		return nil
	}
	client, err := s.Client()
	if err != nil {
		return err
	}
	sign := func(namespace, saName, saUID, secretName string) (string, error) {
		return issuer.IssueLegacy(namespace, satoken.Ref{Name: saName, UID: saUID}, secretName)
	}
	factory := informers.NewSharedInformerFactory(client, 0)
	c := serviceaccounttoken.New(client, factory, sign, s.pki.CAPEM, s.cfg.Logger.With("component", "serviceaccount-token"))
	factory.Start(ctx.Done())
	s.components.Add(1)
	go func() {
		defer s.components.Done()
		c.Run(ctx)
		factory.Shutdown()
	}()
	return nil
}
