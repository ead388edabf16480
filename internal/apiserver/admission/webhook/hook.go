package webhook

import (
	"fmt"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/skiff-dev/skiff/internal/apiserver/admission/dynamicadmission"
)

// defaultTimeout is admissionregistration/v1's default timeoutSeconds.
const defaultTimeout = 10 * time.Second

// hook is one webhook of a configuration, with its selectors parsed and its
// match conditions compiled once per version of the configuration. Hooks
// are shared between requests and never modified.
type hook struct {
	// uid identifies the webhook for reinvocation: configuration name,
	// webhook name and index, as upstream's accessor.
	uid        string
	name       string
	configName string

	rules []admissionregistrationv1.RuleWithOperations
	// equivalent is matchPolicy Equivalent: rules also select the request
	// through other versions of its resource.
	equivalent        bool
	ignoreFailures    bool
	namespaceSelector labels.Selector
	objectSelector    labels.Selector
	// A selector that does not parse is an internal error for the
	// requests the webhook would otherwise be called for.
	namespaceSelectorErr error
	objectSelectorErr    error
	conditions           []condition
	sideEffects          *admissionregistrationv1.SideEffectClass
	timeout              time.Duration
	reviewVersions       []string
	client               ClientConfig
	// reinvoke is a mutating webhook's reinvocationPolicy IfNeeded.
	reinvoke bool
}

// invocation is a webhook to call and the form of the write its rules
// matched.
type invocation struct {
	hook  *hook
	match dynamicadmission.Match
}

// hookFields are the fields mutating and validating webhooks share.
type hookFields struct {
	name                    string
	clientConfig            admissionregistrationv1.WebhookClientConfig
	rules                   []admissionregistrationv1.RuleWithOperations
	matchPolicy             *admissionregistrationv1.MatchPolicyType
	failurePolicy           *admissionregistrationv1.FailurePolicyType
	namespaceSelector       *metav1.LabelSelector
	objectSelector          *metav1.LabelSelector
	sideEffects             *admissionregistrationv1.SideEffectClass
	timeoutSeconds          *int32
	admissionReviewVersions []string
	matchConditions         []admissionregistrationv1.MatchCondition
}

func newHook(configName string, index int, f hookFields) *hook {
	h := &hook{
		uid:            fmt.Sprintf("%s/%s/%d", configName, f.name, index),
		name:           f.name,
		configName:     configName,
		rules:          f.rules,
		equivalent:     dynamicadmission.Equivalent(f.matchPolicy),
		ignoreFailures: f.failurePolicy != nil && *f.failurePolicy == admissionregistrationv1.Ignore,
		sideEffects:    f.sideEffects,
		timeout:        defaultTimeout,
		reviewVersions: f.admissionReviewVersions,
		client:         clientConfigFrom(f.clientConfig),
	}
	if f.timeoutSeconds != nil {
		h.timeout = time.Duration(*f.timeoutSeconds) * time.Second
	}
	h.namespaceSelector, h.namespaceSelectorErr = parseSelector(f.namespaceSelector)
	h.objectSelector, h.objectSelectorErr = parseSelector(f.objectSelector)
	if len(f.matchConditions) > 0 {
		h.conditions = compileConditions(f.matchConditions)
	}
	return h
}

// parseSelector treats an absent selector as v1's default, {} (everything).
func parseSelector(s *metav1.LabelSelector) (labels.Selector, error) {
	if s == nil {
		return labels.Everything(), nil
	}
	sel, err := metav1.LabelSelectorAsSelector(s)
	if err != nil {
		return labels.Nothing(), err
	}
	return sel, nil
}

func clientConfigFrom(c admissionregistrationv1.WebhookClientConfig) ClientConfig {
	out := ClientConfig{URL: c.URL, CABundle: c.CABundle}
	if s := c.Service; s != nil {
		out.Service = &ServiceReference{Namespace: s.Namespace, Name: s.Name, Path: s.Path, Port: s.Port}
	}
	return out
}

func mutatingHooks(c *admissionregistrationv1.MutatingWebhookConfiguration) []*hook {
	out := make([]*hook, 0, len(c.Webhooks))
	for i, w := range c.Webhooks {
		h := newHook(c.Name, i, hookFields{
			name: w.Name, clientConfig: w.ClientConfig, rules: w.Rules, matchPolicy: w.MatchPolicy, failurePolicy: w.FailurePolicy,
			namespaceSelector: w.NamespaceSelector, objectSelector: w.ObjectSelector, sideEffects: w.SideEffects,
			timeoutSeconds: w.TimeoutSeconds, admissionReviewVersions: w.AdmissionReviewVersions,
			matchConditions: w.MatchConditions,
		})
		h.reinvoke = w.ReinvocationPolicy != nil && *w.ReinvocationPolicy == admissionregistrationv1.IfNeededReinvocationPolicy
		out = append(out, h)
	}
	return out
}

func validatingHooks(c *admissionregistrationv1.ValidatingWebhookConfiguration) []*hook {
	out := make([]*hook, 0, len(c.Webhooks))
	for i, w := range c.Webhooks {
		out = append(out, newHook(c.Name, i, hookFields{
			name: w.Name, clientConfig: w.ClientConfig, rules: w.Rules, matchPolicy: w.MatchPolicy, failurePolicy: w.FailurePolicy,
			namespaceSelector: w.NamespaceSelector, objectSelector: w.ObjectSelector, sideEffects: w.SideEffects,
			timeoutSeconds: w.TimeoutSeconds, admissionReviewVersions: w.AdmissionReviewVersions,
			matchConditions: w.MatchConditions,
		}))
	}
	return out
}
