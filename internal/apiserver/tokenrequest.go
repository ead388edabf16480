package apiserver

import (
	"fmt"
	"net/http"
	"slices"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-dev/skiff/internal/apiserver/admission"
	"github.com/skiff-dev/skiff/internal/apiserver/satoken"
)

// TokenRequest lifetimes, as upstream bounds them.
const (
	defaultTokenSeconds = 3600
	minTokenSeconds     = 600
	maxTokenSeconds     = 1 << 32
	// kubeletTokenSeconds is what the kubelet asks for kube-api-access
	// volumes; such tokens are extended to extendedTokenSeconds.
	kubeletTokenSeconds  = 3607
	extendedTokenSeconds = 365 * 24 * 60 * 60
)

var tokenRequestGK = schema.GroupKind{Group: authenticationv1.GroupName, Kind: "TokenRequest"}

// requestToken serves serviceaccounts/token (TokenRequest): a signed token
// for the ServiceAccount, optionally bound to a Pod, Secret or Node.
func (q *request) requestToken() error {
	sat := q.cfg.ServiceAccountTokens
	if q.saTokens == nil {
		return apierrors.NewNotFound(q.res.gr, q.info.name)
	}
	data, err := q.body()
	if err != nil {
		return err
	}
	dec, _, err := q.codecs.decoderFor(q.r.Header.Get("Content-Type"))
	if err != nil {
		return unsupportedMediaType()
	}
	req := &authenticationv1.TokenRequest{}
	if _, _, err := dec.Decode(data, nil, req); err != nil && !runtime.IsStrictDecodingError(err) {
		return apierrors.NewBadRequest(err.Error())
	}
	if req.Spec.ExpirationSeconds == nil {
		req.Spec.ExpirationSeconds = new(int64(defaultTokenSeconds))
	}
	if len(req.Spec.Audiences) == 0 {
		req.Spec.Audiences = slices.Clone(q.saTokens.Audiences())
	}
	if err := validateTokenRequest(req); err != nil {
		return err
	}

	ns := q.info.namespace
	obj, _, err := q.res.get(q.ctx, ns, q.info.name)
	if err != nil {
		return err
	}
	sa := obj.(*corev1.ServiceAccount)
	// NodeRestriction: a node asks only for tokens bound to its own pods.
	if err := q.admission.Validate(q.ctx, q.admissionAttributes(admission.Create, req, sa)); err != nil {
		return err
	}
	tr := satoken.Request{
		Namespace:      ns,
		ServiceAccount: satoken.Ref{Name: sa.Name, UID: string(sa.UID)},
		Audiences:      req.Spec.Audiences,
	}
	if ref := req.Spec.BoundObjectRef; ref != nil {
		if err := q.bindToken(&tr, sa.Name, ref); err != nil {
			return err
		}
	}

	seconds := *req.Spec.ExpirationSeconds
	if limit := int64(sat.MaxExpiration / time.Second); limit > 0 && seconds > limit {
		seconds = limit
		req.Spec.ExpirationSeconds = &seconds
	}
	lifetime := time.Duration(seconds) * time.Second
	tr.Lifetime = lifetime
	if sat.ExtendExpiration && tr.Pod != nil && seconds == kubeletTokenSeconds && q.isAPIAudiences(req.Spec.Audiences) {
		tr.WarnAfter = lifetime
		tr.Lifetime = max(extendedTokenSeconds*time.Second, sat.MaxExpiration)
	}
	tok, _, err := sat.Issuer.Issue(tr)
	if err != nil {
		return apierrors.NewInternalError(err)
	}
	issued := time.Now()
	out := req.DeepCopy()
	out.TypeMeta = metav1.TypeMeta{APIVersion: authenticationv1.SchemeGroupVersion.String(), Kind: "TokenRequest"}
	out.Status = authenticationv1.TokenRequestStatus{
		Token: tok,
		// The requested lifetime, not an extended one, so clients refresh
		// when they asked to.
		ExpirationTimestamp: metav1.NewTime(issued.Add(lifetime).Truncate(time.Second)),
	}
	a, err := q.accept()
	if err != nil {
		return err
	}
	q.writeObject(q.w, a.media, http.StatusCreated, out)
	return nil
}

func validateTokenRequest(req *authenticationv1.TokenRequest) error {
	var errs field.ErrorList
	p := field.NewPath("spec", "expirationSeconds")
	switch exp := *req.Spec.ExpirationSeconds; {
	case exp < minTokenSeconds:
		errs = append(errs, field.Invalid(p, exp, "may not specify a duration less than 10 minutes"))
	case exp > maxTokenSeconds:
		errs = append(errs, field.Invalid(p, exp, "may not specify a duration larger than 2^32 seconds"))
	}
	if len(errs) > 0 {
		return apierrors.NewInvalid(tokenRequestGK, req.Name, errs)
	}
	return nil
}

// isAPIAudiences reports whether auds are all audiences of this API server
// (the kubelet's default tokens), the only tokens upstream extends.
func (q *request) isAPIAudiences(auds []string) bool {
	api := q.saTokens.Audiences()
	for _, a := range auds {
		if !slices.Contains(api, a) {
			return false
		}
	}
	return len(auds) > 0
}

// bindToken checks the object a token is to be bound to and records it in
// tr. Only v1 Pods, Secrets and Nodes can be bound, as upstream.
func (q *request) bindToken(tr *satoken.Request, saName string, ref *authenticationv1.BoundObjectReference) error {
	gvk := schema.FromAPIVersionAndKind(ref.APIVersion, ref.Kind)
	if gvk.Group != "" || gvk.Version != "v1" {
		return apierrors.NewBadRequest(fmt.Sprintf("cannot bind token to object of type %s", gvk))
	}
	ns := q.info.namespace
	var meta metav1.Object
	switch gvk.Kind {
	case "Pod":
		obj, _, err := q.resources[podsGVR].get(q.ctx, ns, ref.Name)
		if err != nil {
			return err
		}
		pod := obj.(*corev1.Pod)
		if pod.Spec.ServiceAccountName != saName {
			return apierrors.NewBadRequest(fmt.Sprintf("cannot bind token for serviceaccount %q to pod running with different serviceaccount name.", saName))
		}
		meta = pod
		tr.Pod = &satoken.Ref{Name: pod.Name, UID: string(pod.UID)}
		// The node the pod runs on is recorded for information, when it
		// still exists.
		if pod.Spec.NodeName != "" {
			if n, _, err := q.resources[nodesGVR].get(q.ctx, "", pod.Spec.NodeName); err == nil {
				node := n.(*corev1.Node)
				tr.Node = &satoken.Ref{Name: node.Name, UID: string(node.UID)}
			}
		}
	case "Secret":
		obj, _, err := q.resources[secretsGVR].get(q.ctx, ns, ref.Name)
		if err != nil {
			return err
		}
		sec := obj.(*corev1.Secret)
		meta = sec
		tr.Secret = &satoken.Ref{Name: sec.Name, UID: string(sec.UID)}
	case "Node":
		obj, _, err := q.resources[nodesGVR].get(q.ctx, "", ref.Name)
		if err != nil {
			return err
		}
		node := obj.(*corev1.Node)
		meta = node
		tr.Node = &satoken.Ref{Name: node.Name, UID: string(node.UID)}
	default:
		return apierrors.NewBadRequest(fmt.Sprintf("cannot bind token to object of type %s", gvk))
	}
	if ref.UID != "" && ref.UID != meta.GetUID() {
		return apierrors.NewConflict(schema.GroupResource{Group: gvk.Group, Resource: gvk.Kind}, ref.Name,
			fmt.Errorf("the UID in the bound object reference (%s) does not match the UID in record. The object might have been deleted and then recreated", ref.UID))
	}
	return nil
}
