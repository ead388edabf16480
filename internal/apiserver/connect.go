package apiserver

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// connectSubresources are the subresources served by a node rather than
// by storage: the API server finds the node and proxies, upgrading the
// connection for streams (SPDY or WebSocket).
var connectSubresources = map[string]map[string]bool{
	"pods":     {"log": true, "exec": true, "attach": true, "portforward": true, "proxy": true},
	"nodes":    {"proxy": true},
	"services": {"proxy": true},
}

// splitConnect recognises a connect request: it returns the subresource
// and the path after it (for proxy).
func splitConnect(info requestInfo) (sub, rest string, ok bool) {
	if info.gv.Group != "" || info.name == "" || info.subresource == "" {
		return "", "", false
	}
	sub, rest, _ = strings.Cut(info.subresource, "/")
	if !connectSubresources[info.resource][sub] {
		return "", "", false
	}
	return sub, rest, true
}

var (
	podsGVR   = schema.GroupVersionResource{Version: "v1", Resource: "pods"}
	nodesGVR  = schema.GroupVersionResource{Version: "v1", Resource: "nodes"}
	endptsGVR = schema.GroupVersionResource{Version: "v1", Resource: "endpoints"}
)

func (s *Server) serveConnect(w http.ResponseWriter, r *http.Request, info requestInfo, sub, rest string) {
	var err error
	switch info.resource {
	case "pods":
		err = s.connectPod(w, r, info, sub, rest)
	case "nodes":
		err = s.connectNode(w, r, info.name, rest)
	case "services":
		err = s.connectService(w, r, info, rest)
	}
	if err != nil {
		s.writeError(w, r, err)
	}
}

func (s *Server) getPod(r *http.Request, ns, name string) (*corev1.Pod, error) {
	obj, _, err := s.resources[podsGVR].get(r.Context(), ns, name)
	if err != nil {
		return nil, err
	}
	return obj.(*corev1.Pod), nil
}

func (s *Server) connectPod(w http.ResponseWriter, r *http.Request, info requestInfo, sub, rest string) error {
	if sub == "proxy" {
		return s.proxyToPod(w, r, info, rest)
	}
	if sub == "log" && r.Method != http.MethodGet {
		return apierrors.NewMethodNotSupported(schema.GroupResource{Resource: "pods/log"}, r.Method)
	}
	pod, err := s.getPod(r, info.namespace, info.name)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	container := q.Get("container")
	if sub != "portforward" {
		if container, err = podContainer(pod, container); err != nil {
			return err
		}
	}
	if pod.Spec.NodeName == "" {
		return apierrors.NewBadRequest(fmt.Sprintf("pod %s does not have a host assigned", pod.Name))
	}
	if err := s.admitConnect(r, info, sub); err != nil {
		return err
	}
	base, err := s.kubeletURL(r, pod.Spec.NodeName)
	if err != nil {
		return err
	}
	switch sub {
	case "log":
		if pod.Status.Phase == "" && len(pod.Status.ContainerStatuses) == 0 {
			return apierrors.NewBadRequest(fmt.Sprintf("container %q in pod %q is waiting to start: ContainerCreating", container, pod.Name))
		}
		base.Path = fmt.Sprintf("/containerLogs/%s/%s/%s", pod.Namespace, pod.Name, container)
	case "exec", "attach":
		if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
			return apierrors.NewBadRequest(fmt.Sprintf("cannot %s into a container in a completed pod; current phase is %s", sub, pod.Status.Phase))
		}
		base.Path = fmt.Sprintf("/%s/%s/%s/%s", sub, pod.Namespace, pod.Name, container)
	case "portforward":
		base.Path = fmt.Sprintf("/portForward/%s/%s", pod.Namespace, pod.Name)
	}
	base.RawQuery = r.URL.RawQuery
	switch {
	case sub == "log" && isWebSocket(r):
		s.logOverWebSocket(w, r, base)
	case sub == "log":
		s.proxy(w, r, base, true)
	default:
		s.serveStream(w, r, sub, base)
	}
	return nil
}

// podContainer defaults and checks the container parameter as upstream:
// a pod with one container needs none.
func podContainer(pod *corev1.Pod, name string) (string, error) {
	all := func(cs []corev1.Container) []string {
		out := make([]string, len(cs))
		for i, c := range cs {
			out[i] = c.Name
		}
		return out
	}
	if name == "" {
		if len(pod.Spec.Containers) == 1 {
			return pod.Spec.Containers[0].Name, nil
		}
		msg := fmt.Sprintf("a container name must be specified for pod %s, choose one of: %v", pod.Name, all(pod.Spec.Containers))
		if len(pod.Spec.InitContainers) > 0 {
			msg += fmt.Sprintf(" or one of the init containers: %v", all(pod.Spec.InitContainers))
		}
		return "", apierrors.NewBadRequest(msg)
	}
	for _, cs := range [][]corev1.Container{pod.Spec.Containers, pod.Spec.InitContainers} {
		for _, c := range cs {
			if c.Name == name {
				return name, nil
			}
		}
	}
	for _, c := range pod.Spec.EphemeralContainers {
		if c.Name == name {
			return name, nil
		}
	}
	return "", apierrors.NewBadRequest(fmt.Sprintf("container %s is not valid for pod %s", name, pod.Name))
}

// kubeletURL is the base URL of a node's kubelet API: its InternalIP and
// the port the node publishes.
func (s *Server) kubeletURL(r *http.Request, nodeName string) (*url.URL, error) {
	if s.cfg.KubeletTransport == nil {
		return nil, apierrors.NewServiceUnavailable("this API server has no kubelet client configured")
	}
	obj, _, err := s.resources[nodesGVR].get(r.Context(), "", nodeName)
	if err != nil {
		return nil, err
	}
	node := obj.(*corev1.Node)
	host := ""
	for _, t := range []corev1.NodeAddressType{corev1.NodeInternalIP, corev1.NodeExternalIP, corev1.NodeHostName} {
		for _, a := range node.Status.Addresses {
			if a.Type == t && host == "" {
				host = a.Address
			}
		}
	}
	port := int(node.Status.DaemonEndpoints.KubeletEndpoint.Port)
	if host == "" || port == 0 {
		return nil, apierrors.NewServiceUnavailable(fmt.Sprintf("node %s has no kubelet address", nodeName))
	}
	return &url.URL{Scheme: "https", Host: net.JoinHostPort(host, strconv.Itoa(port))}, nil
}

func (s *Server) connectNode(w http.ResponseWriter, r *http.Request, name, rest string) error {
	nodeName, _, _ := strings.Cut(name, ":")
	base, err := s.kubeletURL(r, nodeName)
	if err != nil {
		return err
	}
	base.Path = "/" + rest
	base.RawQuery = r.URL.RawQuery
	s.proxy(w, r, base, true)
	return nil
}

// proxy forwards the request, streaming the response and splicing upgraded
// connections; toKubelet authenticates with the API server's kubelet
// client certificate.
func (s *Server) proxy(w http.ResponseWriter, r *http.Request, target *url.URL, toKubelet bool) {
	transport := http.DefaultTransport
	if toKubelet {
		transport = s.cfg.KubeletTransport
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
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			s.writeError(w, r, &apierrors.StatusError{ErrStatus: metav1.Status{
				Status: metav1.StatusFailure, Code: http.StatusBadGateway, Reason: metav1.StatusReasonServiceUnavailable,
				Message: fmt.Sprintf("error trying to reach %s: %v", target.Host, err),
			}})
		},
	}
	p.ServeHTTP(w, r)
}
