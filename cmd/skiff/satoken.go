package main

import (
	"flag"
	"time"

	"github.com/skiff-dev/skiff/internal/cluster"
)

// serviceAccountFlags are the ServiceAccount token flags `server` and `up`
// share, named as kube-apiserver's.
type serviceAccountFlags struct {
	issuer        *string
	maxExpiration *time.Duration
	extend        *bool
}

func addServiceAccountFlags(fs *flag.FlagSet) serviceAccountFlags {
	return serviceAccountFlags{
		issuer: fs.String("service-account-issuer", cluster.DefaultServiceAccountIssuer,
			"issuer (\"iss\") of ServiceAccount tokens, also served by /.well-known/openid-configuration"),
		maxExpiration: fs.Duration("service-account-max-token-expiration", 0,
			"longest lifetime a TokenRequest may get (0: no limit)"),
		extend: fs.Bool("service-account-extend-token-expiration", true,
			"give the kubelet's projected tokens a year of validity, warning after the requested lifetime, so clients that do not reload tokens keep working"),
	}
}

// apply sets the flags' values in c.
func (f serviceAccountFlags) apply(c cluster.ServerConfig) cluster.ServerConfig {
	c.ServiceAccountIssuer = *f.issuer
	c.ServiceAccountMaxTokenExpiration = *f.maxExpiration
	c.ServiceAccountExtendTokenExpiration = *f.extend
	return c
}
