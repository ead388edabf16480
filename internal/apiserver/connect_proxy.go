package apiserver

import (
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	utilproxy "k8s.io/apimachinery/pkg/util/proxy"
)

var serviceResourceGVR = schema.GroupVersionResource{Version: "v1", Resource: "services"}

// workloadTransport reaches pods and services for the proxy subresources.
// As upstream's, it does not verify certificates: pods are addressed by IP
// and serve whatever certificate they like.
var workloadTransport http.RoundTripper = func() http.RoundTripper {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // as upstream's proxy transport
	return t
}()

// proxyToPod serves pods/ID/proxy/PATH, ID being "name", "name:port" or
// "scheme:name:port" (scheme http or https). Without a port, the first
// port a container declares is used, as upstream.
func (s *Server) proxyToPod(w http.ResponseWriter, r *http.Request, info requestInfo, rest string) error {
	scheme, name, port, ok := utilnet.SplitSchemeNamePort(info.name)
	if !ok {
		return apierrors.NewBadRequest(fmt.Sprintf("invalid pod request %q", info.name))
	}
	pod, err := s.getPod(r, info.namespace, name)
	if err != nil {
		return err
	}
	if port == "" {
		for _, c := range pod.Spec.Containers {
			if len(c.Ports) > 0 {
				port = strconv.Itoa(int(c.Ports[0].ContainerPort))
				break
			}
		}
	}
	ip := net.ParseIP(pod.Status.PodIP)
	if ip == nil || !ip.IsGlobalUnicast() { // no loopback, link-local or unspecified
		return apierrors.NewBadRequest("address not allowed")
	}
	host := pod.Status.PodIP
	if port != "" {
		host = net.JoinHostPort(host, port)
	} else if ip.To4() == nil {
		host = "[" + host + "]"
	}
	s.proxyToWorkload(w, r, &url.URL{Scheme: scheme, Host: host}, rest)
	return nil
}

// connectService serves services/ID/proxy/PATH, ID being "name",
// "name:port" or "scheme:name:port", the port a service port's name or
// number. It picks a random ready endpoint that is a pod of the namespace,
// as upstream.
func (s *Server) connectService(w http.ResponseWriter, r *http.Request, info requestInfo, rest string) error {
	scheme, name, portName, ok := utilnet.SplitSchemeNamePort(info.name)
	if !ok {
		return apierrors.NewBadRequest(fmt.Sprintf("invalid service request %q", info.name))
	}
	if num, err := strconv.ParseInt(portName, 10, 32); err == nil {
		obj, _, err := s.resources[serviceResourceGVR].get(r.Context(), info.namespace, name)
		if err != nil {
			return err
		}
		found := false
		for _, sp := range obj.(*corev1.Service).Spec.Ports {
			if int64(sp.Port) == num {
				portName, found = sp.Name, true
				break
			}
		}
		if !found {
			return apierrors.NewServiceUnavailable(fmt.Sprintf("no service port %d found for service %q", num, name))
		}
	}
	hostPort, err := s.serviceEndpoint(r, info.namespace, name, portName)
	if err != nil {
		return err
	}
	s.proxyToWorkload(w, r, &url.URL{Scheme: scheme, Host: hostPort}, rest)
	return nil
}

// serviceEndpoint picks a random ready address serving the service port
// named portName whose target is a pod of the namespace with that IP.
func (s *Server) serviceEndpoint(r *http.Request, ns, name, portName string) (string, error) {
	unavailable := apierrors.NewServiceUnavailable(fmt.Sprintf("no endpoints available for service %q", name))
	obj, _, err := s.resources[endptsGVR].get(r.Context(), ns, name)
	if apierrors.IsNotFound(err) {
		return "", unavailable
	}
	if err != nil {
		return "", err
	}
	var candidates []string
	for _, subset := range obj.(*corev1.Endpoints).Subsets {
		for _, p := range subset.Ports {
			if p.Name != portName {
				continue
			}
			for _, a := range subset.Addresses {
				if s.isPodAddress(r, ns, a) {
					candidates = append(candidates, net.JoinHostPort(a.IP, strconv.Itoa(int(p.Port))))
				}
			}
		}
	}
	if len(candidates) == 0 {
		return "", unavailable
	}
	return candidates[rand.IntN(len(candidates))], nil
}

// isPodAddress reports whether an endpoint address belongs to a pod of the
// namespace: the proxy reaches pods only, never addresses a user wrote.
func (s *Server) isPodAddress(r *http.Request, ns string, a corev1.EndpointAddress) bool {
	ref := a.TargetRef
	if ref == nil || ref.Kind != "Pod" || ref.Namespace != ns {
		return false
	}
	pod, err := s.getPod(r, ns, ref.Name)
	if err != nil {
		return false
	}
	for _, ip := range pod.Status.PodIPs {
		if ip.IP == a.IP {
			return true
		}
	}
	return pod.Status.PodIP == a.IP
}

// proxyToWorkload forwards the request to target + "/" + rest as upstream's
// pod and service proxies: a bare .../proxy redirects to .../proxy/, the
// trailing slash is kept, links in HTML answers are rewritten to go back
// through the proxy, and CORS headers of the answer are dropped.
func (s *Server) proxyToWorkload(w http.ResponseWriter, r *http.Request, target *url.URL, rest string) {
	if target.Scheme == "" {
		target.Scheme = "http"
	}
	if rest != "" {
		target.Path = "/" + rest
	}
	if strings.HasSuffix(r.URL.Path, "/") && !strings.HasSuffix(target.Path, "/") {
		target.Path += "/"
	}
	if target.Path == "" && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		loc := r.URL.Path + "/"
		if r.URL.RawQuery != "" {
			loc += "?" + r.URL.RawQuery
		}
		w.Header().Set("Location", loc)
		w.WriteHeader(http.StatusMovedPermanently)
		return
	}
	target.RawQuery = r.URL.RawQuery
	// As upstream, scheme and host come from the request URL, empty for a
	// server's requests: rewritten links are absolute paths on this server.
	transport := &utilproxy.Transport{
		Scheme:       r.URL.Scheme,
		Host:         r.URL.Host,
		PathPrepend:  strings.TrimSuffix(r.URL.Path, target.Path),
		RoundTripper: workloadTransport,
	}
	p := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL = target
			pr.Out.Host = target.Host
			// The caller's credentials are for the API server only.
			pr.Out.Header.Del("Authorization")
		},
		Transport:     transport,
		FlushInterval: -1,
		ModifyResponse: func(resp *http.Response) error {
			for _, h := range []string{"Access-Control-Allow-Credentials", "Access-Control-Allow-Headers",
				"Access-Control-Allow-Methods", "Access-Control-Allow-Origin"} {
				resp.Header.Del(h)
			}
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			var status apierrors.APIStatus
			if !errors.As(err, &status) {
				err = apierrors.NewServiceUnavailable(fmt.Sprintf("error trying to reach service: %v", err))
			}
			s.writeError(w, r, err)
		},
	}
	p.ServeHTTP(w, r)
}
