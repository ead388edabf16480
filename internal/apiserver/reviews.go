package apiserver

import (
	"context"
	"fmt"
	"net/http"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-dev/skiff/internal/apis"
	"github.com/skiff-dev/skiff/internal/apiserver/authn"
	"github.com/skiff-dev/skiff/internal/apiserver/authz"
)

// serveReview answers a create-only review: who a token is, who the caller
// is, or whether someone may do something. The answer is the posted object
// with its status filled in; nothing is stored.
func (s *Server) serveReview(w http.ResponseWriter, r *http.Request, info requestInfo, rv *apis.Resource) {
	if r.Method != http.MethodPost || info.name != "" {
		s.writeError(w, r, apierrors.NewMethodNotSupported(rv.GVR.GroupResource(), r.Method))
		return
	}
	q := &request{Server: s, w: w, r: r, ctx: r.Context(), info: info}
	a, err := q.accept()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	data, err := q.body()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	dec, _, err := s.codecs.decoderFor(r.Header.Get("Content-Type"))
	if err != nil {
		s.writeError(w, r, unsupportedMediaType())
		return
	}
	want := rv.GVR.GroupVersion().WithKind(rv.Kind)
	obj, gvk, err := dec.Decode(data, &want, rv.New())
	if err != nil && !runtime.IsStrictDecodingError(err) {
		s.writeError(w, r, apierrors.NewBadRequest(err.Error()))
		return
	}
	if gvk != nil && *gvk != want {
		s.writeError(w, r, apierrors.NewBadRequest(fmt.Sprintf("the API version in the data (%s) does not match the expected API version (%s)", gvk.GroupVersion(), want.GroupVersion())))
		return
	}
	caller, _ := authn.UserFrom(r.Context())
	switch o := obj.(type) {
	case *authenticationv1.TokenReview:
		err = s.reviewToken(o)
	case *authenticationv1.SelfSubjectReview:
		o.Status.UserInfo = userInfo(caller)
	case *authorizationv1.SubjectAccessReview:
		err = s.reviewAccess(r.Context(), o)
	case *authorizationv1.LocalSubjectAccessReview:
		err = s.reviewLocalAccess(r.Context(), o, info.namespace)
	case *authorizationv1.SelfSubjectAccessReview:
		err = s.reviewSelfAccess(r.Context(), o, caller)
	case *authorizationv1.SelfSubjectRulesReview:
		err = s.reviewRules(o, caller)
	default:
		err = apierrors.NewNotFound(rv.GVR.GroupResource(), "")
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	obj.GetObjectKind().SetGroupVersionKind(want)
	q.respond(a, http.StatusCreated, obj)
}

func userInfo(u *authn.User) authenticationv1.UserInfo {
	if u == nil {
		return authenticationv1.UserInfo{}
	}
	ui := authenticationv1.UserInfo{Username: u.Name, UID: u.UID, Groups: u.Groups}
	if len(u.Extra) > 0 {
		ui.Extra = make(map[string]authenticationv1.ExtraValue, len(u.Extra))
		for k, v := range u.Extra {
			ui.Extra[k] = v
		}
	}
	return ui
}

func userFromInfo(name, uid string, groups []string, extra map[string]authorizationv1.ExtraValue) *authn.User {
	u := &authn.User{Name: name, UID: uid, Groups: groups}
	if len(extra) > 0 {
		u.Extra = make(map[string][]string, len(extra))
		for k, v := range extra {
			u.Extra[k] = v
		}
	}
	return u
}

// reviewToken authenticates spec.token as if it came in a request's
// Authorization header.
func (s *Server) reviewToken(tr *authenticationv1.TokenReview) error {
	if tr.Spec.Token == "" {
		return apierrors.NewBadRequest("token is required for TokenReview in authentication")
	}
	tr.Status = authenticationv1.TokenReviewStatus{}
	if s.authenticator == nil {
		tr.Status.Error = "token authentication is not configured"
		return nil
	}
	// A ServiceAccount token is checked against the audiences the
	// reviewer asks about; anything else as if it came in a request.
	if s.saTokens != nil && len(tr.Spec.Audiences) > 0 {
		u, matched, ok, err := s.saTokens.AuthenticateTokenFor(tr.Spec.Token, tr.Spec.Audiences)
		if ok || err != nil {
			setTokenReviewStatus(tr, u, ok, err, matched)
			return nil
		}
	}
	fake, _ := http.NewRequest(http.MethodGet, "/", nil)
	fake.Header.Set("Authorization", "Bearer "+tr.Spec.Token)
	u, ok, err := s.authenticator.Authenticate(fake)
	setTokenReviewStatus(tr, u, ok, err, s.apiAudiences())
	return nil
}

func setTokenReviewStatus(tr *authenticationv1.TokenReview, u *authn.User, ok bool, err error, audiences []string) {
	switch {
	case err != nil:
		tr.Status.Error = err.Error()
	case ok:
		tr.Status.Authenticated = true
		tr.Status.User = userInfo(u)
		tr.Status.Audiences = audiences
	}
}

// apiAudiences are the audiences this server's tokens are for.
func (s *Server) apiAudiences() []string {
	if s.saTokens == nil {
		return nil
	}
	return s.saTokens.Audiences()
}

// reviewAccess asks the server's authorizers about someone else.
func (s *Server) reviewAccess(ctx context.Context, sar *authorizationv1.SubjectAccessReview) error {
	spec := sar.Spec
	if errs := validateSubjectAccessSpec(&spec); len(errs) > 0 {
		return invalidReview(errs)
	}
	u := userFromInfo(spec.User, spec.UID, spec.Groups, spec.Extra)
	sar.Status = s.decide(ctx, u, spec.ResourceAttributes, spec.NonResourceAttributes)
	return nil
}

func (s *Server) reviewLocalAccess(ctx context.Context, sar *authorizationv1.LocalSubjectAccessReview, namespace string) error {
	spec := sar.Spec
	errs := validateSubjectAccessSpec(&spec)
	meta := sar.ObjectMeta
	meta.Namespace, meta.ManagedFields = "", nil
	if !equality.Semantic.DeepEqual(meta, metav1.ObjectMeta{}) {
		errs = append(errs, field.Invalid(field.NewPath("metadata"), sar.ObjectMeta, "must be empty except for namespace"))
	}
	if spec.ResourceAttributes != nil && spec.ResourceAttributes.Namespace != namespace {
		errs = append(errs, field.Invalid(field.NewPath("spec", "resourceAttributes", "namespace"), spec.ResourceAttributes.Namespace, "must match metadata.namespace"))
	}
	if spec.NonResourceAttributes != nil {
		errs = append(errs, field.Invalid(field.NewPath("spec", "nonResourceAttributes"), spec.NonResourceAttributes, "disallowed on this kind of request"))
	}
	if sar.Namespace != "" && sar.Namespace != namespace {
		errs = append(errs, field.Invalid(field.NewPath("metadata", "namespace"), sar.Namespace, "must match the namespace of the request"))
	}
	if len(errs) > 0 {
		return invalidReview(errs)
	}
	sar.Namespace = namespace
	u := userFromInfo(spec.User, spec.UID, spec.Groups, spec.Extra)
	sar.Status = s.decide(ctx, u, spec.ResourceAttributes, nil)
	return nil
}

func (s *Server) reviewSelfAccess(ctx context.Context, sar *authorizationv1.SelfSubjectAccessReview, caller *authn.User) error {
	if errs := validateAccessSpec(sar.Spec.ResourceAttributes, sar.Spec.NonResourceAttributes); len(errs) > 0 {
		return invalidReview(errs)
	}
	sar.Status = s.decide(ctx, caller, sar.Spec.ResourceAttributes, sar.Spec.NonResourceAttributes)
	return nil
}

// invalidReview is upstream's 422 for an access review: its errors name the
// group but no kind (".authorization.k8s.io \"\" is invalid").
func invalidReview(errs field.ErrorList) error {
	return apierrors.NewInvalid(schema.GroupKind{Group: authorizationv1.GroupName}, "", errs)
}

// validateSubjectAccessSpec checks a review about someone else: what is
// asked, then who is asked about, in upstream's order.
func validateSubjectAccessSpec(spec *authorizationv1.SubjectAccessReviewSpec) field.ErrorList {
	errs := validateAccessSpec(spec.ResourceAttributes, spec.NonResourceAttributes)
	if spec.User == "" && len(spec.Groups) == 0 {
		errs = append(errs, field.Invalid(field.NewPath("spec", "user"), spec.User, "at least one of user or group must be specified"))
	}
	return errs
}

func validateAccessSpec(ra *authorizationv1.ResourceAttributes, nra *authorizationv1.NonResourceAttributes) field.ErrorList {
	spec := field.NewPath("spec")
	switch {
	case ra == nil && nra == nil:
		return field.ErrorList{field.Invalid(spec, nil, "exactly one of nonResourceAttributes or resourceAttributes must be specified")}
	case ra != nil && nra != nil:
		return field.ErrorList{field.Invalid(spec.Child("nonResourceAttributes"), nra, "cannot be specified in combination with resourceAttributes")}
	}
	return nil
}

// decide runs the same authorizer chain that guards requests.
func (s *Server) decide(ctx context.Context, u *authn.User, ra *authorizationv1.ResourceAttributes, nra *authorizationv1.NonResourceAttributes) authorizationv1.SubjectAccessReviewStatus {
	a := authz.Attributes{User: u}
	if ra != nil {
		a.ResourceRequest = true
		a.Verb, a.Namespace, a.APIGroup, a.APIVersion = ra.Verb, ra.Namespace, ra.Group, ra.Version
		a.Resource, a.Subresource, a.Name = ra.Resource, ra.Subresource, ra.Name
		a.FieldSelector = reviewFieldSelector(ra.FieldSelector)
	} else {
		a.Verb, a.Path = nra.Verb, nra.Path
	}
	if s.authorizer == nil {
		return authorizationv1.SubjectAccessReviewStatus{Allowed: true}
	}
	d, reason, err := s.authorizer.Authorize(ctx, a)
	st := authorizationv1.SubjectAccessReviewStatus{Allowed: d == authz.Allow, Denied: d == authz.Deny, Reason: reason}
	if err != nil {
		st.EvaluationError = err.Error()
	}
	return st
}

// reviewFieldSelector is the field selector a review asks about, as
// upstream reads it: the raw selector parsed, or the requirements with In
// and NotIn of one value as = and !=. Terms it cannot read are left out:
// authorizers allow on a term being there, so that never allows more.
func reviewFieldSelector(fs *authorizationv1.FieldSelectorAttributes) fields.Requirements {
	switch {
	case fs == nil:
		return nil
	case fs.RawSelector != "":
		sel, err := fields.ParseSelector(fs.RawSelector)
		if err != nil {
			return nil
		}
		return selectorTerms(sel)
	}
	var reqs fields.Requirements
	for _, r := range fs.Requirements {
		if len(r.Values) != 1 {
			continue
		}
		switch r.Operator {
		case metav1.FieldSelectorOpIn:
			reqs = append(reqs, fields.Requirement{Field: r.Key, Operator: selection.Equals, Value: r.Values[0]})
		case metav1.FieldSelectorOpNotIn:
			reqs = append(reqs, fields.Requirement{Field: r.Key, Operator: selection.NotEquals, Value: r.Values[0]})
		}
	}
	return reqs
}

// reviewRules lists what the caller may do in a namespace, from RBAC (as
// upstream, which answers from RBAC and marks other authorizers' rules
// incomplete).
func (s *Server) reviewRules(rr *authorizationv1.SelfSubjectRulesReview, caller *authn.User) error {
	if rr.Spec.Namespace == "" {
		return apierrors.NewBadRequest("no namespace on request")
	}
	rr.Status = authorizationv1.SubjectRulesReviewStatus{ResourceRules: []authorizationv1.ResourceRule{}, NonResourceRules: []authorizationv1.NonResourceRule{}}
	if s.rbac == nil {
		rr.Status.ResourceRules = append(rr.Status.ResourceRules, authorizationv1.ResourceRule{
			Verbs: []string{"*"}, APIGroups: []string{"*"}, Resources: []string{"*"}})
		rr.Status.NonResourceRules = append(rr.Status.NonResourceRules, authorizationv1.NonResourceRule{Verbs: []string{"*"}, NonResourceURLs: []string{"*"}})
		return nil
	}
	rules, incomplete, err := s.rbac.RulesFor(caller, rr.Spec.Namespace)
	rr.Status.Incomplete = incomplete
	if err != nil {
		rr.Status.EvaluationError = err.Error()
	}
	for _, rule := range rules {
		appendRule(&rr.Status, rule)
	}
	return nil
}

func appendRule(st *authorizationv1.SubjectRulesReviewStatus, rule rbacv1.PolicyRule) {
	if len(rule.NonResourceURLs) > 0 {
		st.NonResourceRules = append(st.NonResourceRules, authorizationv1.NonResourceRule{Verbs: rule.Verbs, NonResourceURLs: rule.NonResourceURLs})
		return
	}
	st.ResourceRules = append(st.ResourceRules, authorizationv1.ResourceRule{
		Verbs: rule.Verbs, APIGroups: rule.APIGroups, Resources: rule.Resources, ResourceNames: rule.ResourceNames})
}
