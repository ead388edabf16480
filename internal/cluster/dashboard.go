package cluster

import (
	"context"
	"crypto/tls"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/skiff-dev/skiff/internal/dashboard"
)

// startDashboard serves the web dashboard on cfg.DashboardPort of the bind
// address until ctx ends. The dashboard is a convenience: when it cannot
// start (say, the port is taken by another server on this machine) the
// error is logged and the control plane runs on without it.
func (s *Server) startDashboard(ctx context.Context, cfg ServerConfig) {
	log := cfg.Logger.With("component", "dashboard")
	// Its own identity reads metrics.k8s.io for the usage charts; users'
	// requests carry their own tokens.
	rc, err := s.componentConfig(cfg.DataDir, "dashboard.kubeconfig", dashboard.User)
	if err != nil {
		log.Error("dashboard not started: credentials", "err", err)
		return
	}
	d, err := dashboard.New(dashboard.Config{RESTConfig: rc, Writable: cfg.DashboardWritable, Logger: log})
	if err != nil {
		log.Error("dashboard not started", "err", err)
		return
	}
	host := cfg.BindAddress
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	hosts := append(servingHosts(cfg.BindAddress, host, ""), "localhost", "127.0.0.1")
	if name, err := os.Hostname(); err == nil {
		hosts = append(hosts, name)
	}
	certPEM, keyPEM, err := s.pki.IssueServingCert("skiff-dashboard", hosts, componentCertTTL)
	if err != nil {
		log.Error("dashboard not started: serving certificate", "err", err)
		return
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		log.Error("dashboard not started: serving certificate", "err", err)
		return
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(cfg.BindAddress, strconv.Itoa(cfg.DashboardPort)))
	if err != nil {
		log.Error("dashboard not started (set --dashboard-port, 0 disables it)", "err", err)
		return
	}
	s.DashboardURL = "https://" + net.JoinHostPort(host, strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)) + "/"
	admin, err := s.Client()
	if err != nil {
		ln.Close()
		log.Error("dashboard not started", "err", err)
		return
	}
	s.components.Add(2)
	go func() {
		defer s.components.Done()
		rbacCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := dashboard.EnsureRBAC(rbacCtx, admin)
		cancel()
		if err != nil {
			log.Warn("dashboard usage charts will stay empty", "err", err)
		}
		d.Run(ctx)
	}()
	go func() {
		defer s.components.Done()
		if err := d.Serve(ctx, ln, cert); err != nil {
			log.Error("dashboard stopped", "err", err)
		}
	}()
	log.Info("dashboard serving", "url", s.DashboardURL, "writable", cfg.DashboardWritable)
}
