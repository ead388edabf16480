package apiserver

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// customSet is an immutable snapshot of the custom resources being served
// and their discovery documents. The CRD controller builds a new one on
// every change and swaps it in (Server.custom), so requests read it
// without locks.
type customSet struct {
	byGVR  map[schema.GroupVersionResource]*resource
	byKind map[schema.GroupVersionKind]*resource
	// disc holds the discovery documents with the custom groups merged in;
	// nil means the built-in documents alone.
	disc *discoveryDocs
}

var emptyCustomSet = &customSet{byGVR: map[schema.GroupVersionResource]*resource{}, byKind: map[schema.GroupVersionKind]*resource{}}

// customResources returns the current snapshot (never nil).
func (s *Server) customResources() *customSet {
	if c := s.custom.Load(); c != nil {
		return c
	}
	return emptyCustomSet
}

// lookupResource finds the served resource of a request: a built-in
// first, then a custom resource.
func (s *Server) lookupResource(gvr schema.GroupVersionResource) *resource {
	if r := s.resources[gvr]; r != nil {
		return r
	}
	return s.customResources().byGVR[gvr]
}
