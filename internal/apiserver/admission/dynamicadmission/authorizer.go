package dynamicadmission

import (
	"context"

	"github.com/google/cel-go/common/types/ref"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"k8s.io/apiserver/pkg/cel/library"

	"github.com/skiff-dev/skiff/internal/apiserver/admission"
	"github.com/skiff-dev/skiff/internal/apiserver/authn"
	"github.com/skiff-dev/skiff/internal/apiserver/authz"
)

// NewCELAuthorizer lets the Kubernetes CEL authorizer library ask Skiff's
// authorizer chain. With a nil chain every check is a denial with no
// opinion.
func NewCELAuthorizer(chain authz.Authorizer) authorizer.UnconditionalAuthorizer {
	return celAuthorizer{chain: chain}
}

type celAuthorizer struct{ chain authz.Authorizer }

func (c celAuthorizer) Authorize(ctx context.Context, a authorizer.Attributes) (authorizer.Decision, string, error) {
	if c.chain == nil {
		return authorizer.DecisionNoOpinion, "no authorizer", nil
	}
	var u *authn.User
	if info := a.GetUser(); info != nil {
		u = &authn.User{Name: info.GetName(), UID: info.GetUID(), Groups: info.GetGroups(), Extra: info.GetExtra()}
	}
	d, reason, err := c.chain.Authorize(ctx, authz.Attributes{
		User:            u,
		Verb:            a.GetVerb(),
		ResourceRequest: a.IsResourceRequest(),
		Path:            a.GetPath(),
		APIGroup:        a.GetAPIGroup(),
		APIVersion:      a.GetAPIVersion(),
		Namespace:       a.GetNamespace(),
		Resource:        a.GetResource(),
		Subresource:     a.GetSubresource(),
		Name:            a.GetName(),
	})
	switch d {
	case authz.Allow:
		return authorizer.DecisionAllow, reason, err
	case authz.Deny:
		return authorizer.DecisionDeny, reason, err
	}
	return authorizer.DecisionNoOpinion, reason, err
}

// AuthorizerValues are the values of the `authorizer` and
// `authorizer.requestResource` CEL variables for write a, checking as its
// user. namespace is the request's namespace as the plugin reports it.
func AuthorizerValues(az authorizer.UnconditionalAuthorizer, a *admission.Attributes, namespace string) (authorizerVal, requestResourceVal ref.Val) {
	u := userInfo(a.User)
	rr := requestResource{a: a, namespace: namespace}
	return library.NewAuthorizerVal(u, az), library.NewResourceAuthorizerVal(u, az, rr)
}

func userInfo(u *authn.User) user.Info {
	if u == nil {
		return &user.DefaultInfo{}
	}
	return &user.DefaultInfo{Name: u.Name, UID: u.UID, Groups: u.Groups, Extra: u.Extra}
}

// requestResource is the resource of the request, as
// authorizer.requestResource checks it.
type requestResource struct {
	a         *admission.Attributes
	namespace string
}

func (r requestResource) GetName() string                          { return r.a.Name }
func (r requestResource) GetNamespace() string                     { return r.namespace }
func (r requestResource) GetResource() schema.GroupVersionResource { return r.a.Resource }
func (r requestResource) GetSubresource() string                   { return r.a.Subresource }
