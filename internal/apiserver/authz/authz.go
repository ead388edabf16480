// Package authz decides whether an authenticated caller may make a request:
// a chain of authorizers (Node, RBAC), each answering allow, deny or no
// opinion, as upstream's API server asks them.
package authz

import (
	"context"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/fields"

	"github.com/skiff-dev/skiff/internal/apiserver/authn"
)

// Attributes describe one request as authorizers see it.
type Attributes struct {
	User *authn.User
	// Verb is the API verb (get, list, watch, create, update, patch, delete,
	// deletecollection, and for special checks impersonate, bind, escalate,
	// approve, sign, use) or, for non-resource requests, the lower-case HTTP
	// method.
	Verb string
	// ResourceRequest is false for non-resource URLs such as /version.
	ResourceRequest bool
	// Path is the URL path of a non-resource request.
	Path string

	APIGroup    string
	APIVersion  string
	Namespace   string
	Resource    string
	Subresource string
	Name        string
	// FieldSelector is the parsed fieldSelector of a list, watch or
	// deletecollection (nil without one, or when it does not parse): the
	// Node authorizer lets a node list only what selects its own name.
	FieldSelector fields.Requirements
}

// Decision is an authorizer's answer.
type Decision int

const (
	// NoOpinion passes the request to the next authorizer.
	NoOpinion Decision = iota
	// Allow admits the request.
	Allow
	// Deny refuses it without asking the others.
	Deny
)

func (d Decision) String() string {
	switch d {
	case Allow:
		return "allow"
	case Deny:
		return "deny"
	}
	return "no opinion"
}

// Authorizer decides one request. reason explains the decision (shown in
// SubjectAccessReview status and 403 messages).
type Authorizer interface {
	Authorize(ctx context.Context, a Attributes) (d Decision, reason string, err error)
}

// Func adapts a function to Authorizer.
type Func func(ctx context.Context, a Attributes) (Decision, string, error)

// Authorize implements Authorizer.
func (f Func) Authorize(ctx context.Context, a Attributes) (Decision, string, error) {
	return f(ctx, a)
}

// Chain asks each authorizer in turn; the first that allows or denies
// decides. Errors are collected and reported only when no one decided.
func Chain(auths ...Authorizer) Authorizer { return chain(auths) }

type chain []Authorizer

func (c chain) Authorize(ctx context.Context, a Attributes) (Decision, string, error) {
	var reasons []string
	var firstErr error
	for _, z := range c {
		d, reason, err := z.Authorize(ctx, a)
		if err != nil && firstErr == nil {
			firstErr = err
		}
		if d != NoOpinion {
			return d, reason, nil
		}
		if reason != "" {
			reasons = append(reasons, reason)
		}
	}
	return NoOpinion, strings.Join(reasons, "\n"), firstErr
}

// PrivilegedGroup is allowed everything, as upstream's system:masters.
const PrivilegedGroup = "system:masters"

// Privileged allows members of system:masters before anyone else is asked.
var Privileged Authorizer = Func(func(_ context.Context, a Attributes) (Decision, string, error) {
	if a.User != nil {
		for _, g := range a.User.Groups {
			if g == PrivilegedGroup {
				return Allow, "", nil
			}
		}
	}
	return NoOpinion, "", nil
})

// ForbiddenMessage is upstream's 403 text: who may not do what, and why.
func ForbiddenMessage(a Attributes, reason string) string {
	user := "system:anonymous"
	if a.User != nil {
		user = a.User.Name
	}
	var msg string
	if !a.ResourceRequest {
		msg = fmt.Sprintf("User %q cannot %s path %q", user, a.Verb, a.Path)
	} else {
		res := a.Resource
		if a.Subresource != "" {
			res += "/" + a.Subresource
		}
		if a.APIGroup != "" {
			res = fmt.Sprintf("resource %q in API group %q", res, a.APIGroup)
		} else {
			res = fmt.Sprintf("resource %q in API group \"\"", res)
		}
		msg = fmt.Sprintf("User %q cannot %s %s", user, a.Verb, res)
		switch {
		case a.Namespace != "":
			msg += fmt.Sprintf(" in the namespace %q", a.Namespace)
		default:
			msg += " at the cluster scope"
		}
	}
	if reason != "" {
		msg += ": " + reason
	}
	return msg
}
