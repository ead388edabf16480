package apiserver

import (
	"github.com/skiff-dev/skiff/internal/apiserver/openapi"
)

// CustomResourceOpenAPI receives the served custom resources for the
// OpenAPI documents (*openapi.Service).
type CustomResourceOpenAPI interface {
	SetCustomResources([]openapi.CustomResource)
}

// publishOpenAPI tells the OpenAPI documents which custom resources are
// served, one entry per served version.
func (s *Server) publishOpenAPI(rs []*resource) {
	if s.cfg.CustomResourceOpenAPI == nil {
		return
	}
	crs := make([]openapi.CustomResource, 0, len(rs))
	for _, r := range rs {
		crs = append(crs, openapi.CustomResource{
			GVR: r.GVR, Kind: r.Kind, ListKind: r.custom.crd.Status.AcceptedNames.ListKind, Namespaced: r.Namespaced,
			Subresources: r.Subresources, Schema: r.custom.schema.OpenAPISchema(), ShortNames: r.ShortNames,
		})
	}
	s.cfg.CustomResourceOpenAPI.SetCustomResources(crs)
}
