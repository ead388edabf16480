package apis

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	apiregistrationv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
)

// apiRegistrationResources is apiregistration.k8s.io/v1 APIServices: which
// service serves a group version. Skiff stores and validates them; it does
// not proxy to the services they name.
func apiRegistrationResources() []*Resource {
	r := def(apiregistrationv1.SchemeGroupVersion, "apiservices", "apiservice", "APIService", false,
		func() runtime.Object { return &apiregistrationv1.APIService{} },
		func() runtime.Object { return &apiregistrationv1.APIServiceList{} }).with("status")
	attachBehaviour(r)
	r.Categories = []string{"api-extensions"}
	r.Default = defaultAPIService
	r.Validate = func(obj runtime.Object) field.ErrorList {
		return validateAPIService(obj.(*apiregistrationv1.APIService))
	}
	r.ValidateUpdate = func(obj, old runtime.Object) field.ErrorList {
		return validateAPIServiceUpdate(obj.(*apiregistrationv1.APIService), old.(*apiregistrationv1.APIService))
	}
	// kube-aggregator's printer (pkg/registry/apiservice/etcd).
	r.TableColumns = []metav1.TableColumnDefinition{
		col("Service", "string", "The reference to the service that hosts this API endpoint.", 0),
		col("Available", "string", "Whether this service is available.", 0),
		ageCol,
	}
	r.TableRow = func(obj runtime.Object) []any {
		s := obj.(*apiregistrationv1.APIService)
		service := "Local"
		if ref := s.Spec.Service; ref != nil {
			service = ref.Namespace + "/" + ref.Name
		}
		return []any{service, apiServiceAvailability(s), age(obj)}
	}
	return []*Resource{r}
}

// apiServiceAvailability is the AVAILABLE cell: True, or the status with
// its reason ("False (ServiceNotFound)"), or Unknown without a condition.
func apiServiceAvailability(s *apiregistrationv1.APIService) string {
	for _, c := range s.Status.Conditions {
		if c.Type != apiregistrationv1.Available {
			continue
		}
		if c.Status != apiregistrationv1.ConditionTrue && c.Reason != "" {
			return string(c.Status) + " (" + c.Reason + ")"
		}
		return string(c.Status)
	}
	return string(apiregistrationv1.ConditionUnknown)
}

// defaultAPIService applies upstream's defaults (service port 443) and,
// as its create strategy does, marks a new local APIService (no service)
// available. Updates keep the stored status, so the condition is only
// added when the status has none.
func defaultAPIService(obj runtime.Object) {
	s := obj.(*apiregistrationv1.APIService)
	if ref := s.Spec.Service; ref != nil {
		ref.Port = orDefault(ref.Port, 443)
	}
	if s.Spec.Service == nil && len(s.Status.Conditions) == 0 {
		s.Status.Conditions = []apiregistrationv1.APIServiceCondition{localAvailable()}
	}
}

func localAvailable() apiregistrationv1.APIServiceCondition {
	return apiregistrationv1.APIServiceCondition{
		Type:               apiregistrationv1.Available,
		Status:             apiregistrationv1.ConditionTrue,
		LastTransitionTime: metav1.Now(),
		Reason:             "Local",
		Message:            "Local APIServices are always available",
	}
}

// AutomanagedLabel marks the APIServices the server registers for its own
// group versions ("onstart": created at start, left alone afterwards).
const AutomanagedLabel = "kube-aggregator.kubernetes.io/automanaged"

// apiServicePriority orders groups (higher first) and versions within a group.
type apiServicePriority struct{ group, version int32 }

// localAPIServicePriorities are kube-apiserver's priorities for its
// built-in group versions (cmd/kube-apiserver/app/aggregator.go).
var localAPIServicePriorities = map[schema.GroupVersion]apiServicePriority{
	{Group: "", Version: "v1"}:                                   {18000, 1},
	{Group: "apps", Version: "v1"}:                               {17800, 15},
	{Group: "events.k8s.io", Version: "v1"}:                      {17750, 15},
	{Group: "events.k8s.io", Version: "v1beta1"}:                 {17750, 5},
	{Group: "authentication.k8s.io", Version: "v1"}:              {17700, 15},
	{Group: "authentication.k8s.io", Version: "v1beta1"}:         {17700, 9},
	{Group: "authentication.k8s.io", Version: "v1alpha1"}:        {17700, 1},
	{Group: "authorization.k8s.io", Version: "v1"}:               {17600, 15},
	{Group: "autoscaling", Version: "v1"}:                        {17500, 15},
	{Group: "autoscaling", Version: "v2"}:                        {17500, 30},
	{Group: "autoscaling", Version: "v2beta1"}:                   {17500, 9},
	{Group: "autoscaling", Version: "v2beta2"}:                   {17500, 1},
	{Group: "batch", Version: "v1"}:                              {17400, 15},
	{Group: "batch", Version: "v1beta1"}:                         {17400, 9},
	{Group: "batch", Version: "v2alpha1"}:                        {17400, 9},
	{Group: "certificates.k8s.io", Version: "v1"}:                {17300, 15},
	{Group: "certificates.k8s.io", Version: "v1beta1"}:           {17300, 9},
	{Group: "certificates.k8s.io", Version: "v1alpha1"}:          {17300, 1},
	{Group: "networking.k8s.io", Version: "v1"}:                  {17200, 15},
	{Group: "networking.k8s.io", Version: "v1beta1"}:             {17200, 9},
	{Group: "policy", Version: "v1"}:                             {17100, 15},
	{Group: "policy", Version: "v1beta1"}:                        {17100, 9},
	{Group: "rbac.authorization.k8s.io", Version: "v1"}:          {17000, 15},
	{Group: "storage.k8s.io", Version: "v1"}:                     {16800, 15},
	{Group: "storage.k8s.io", Version: "v1beta1"}:                {16800, 9},
	{Group: "storage.k8s.io", Version: "v1alpha1"}:               {16800, 1},
	{Group: "apiextensions.k8s.io", Version: "v1"}:               {16700, 15},
	{Group: "admissionregistration.k8s.io", Version: "v1"}:       {16700, 15},
	{Group: "admissionregistration.k8s.io", Version: "v1beta1"}:  {16700, 12},
	{Group: "admissionregistration.k8s.io", Version: "v1alpha1"}: {16700, 9},
	{Group: "scheduling.k8s.io", Version: "v1"}:                  {16600, 15},
	{Group: "scheduling.k8s.io", Version: "v1beta1"}:             {16600, 9},
	{Group: "scheduling.k8s.io", Version: "v1alpha3"}:            {16600, 3},
	{Group: "coordination.k8s.io", Version: "v1"}:                {16500, 15},
	{Group: "coordination.k8s.io", Version: "v1beta1"}:           {16500, 13},
	{Group: "coordination.k8s.io", Version: "v1alpha2"}:          {16500, 12},
	{Group: "node.k8s.io", Version: "v1"}:                        {16300, 15},
	{Group: "node.k8s.io", Version: "v1beta1"}:                   {16300, 9},
	{Group: "node.k8s.io", Version: "v1alpha1"}:                  {16300, 1},
	{Group: "discovery.k8s.io", Version: "v1"}:                   {16200, 15},
	{Group: "discovery.k8s.io", Version: "v1beta1"}:              {16200, 12},
	{Group: "resource.k8s.io", Version: "v1"}:                    {16200, 21},
	{Group: "resource.k8s.io", Version: "v1beta2"}:               {16200, 15},
	{Group: "resource.k8s.io", Version: "v1beta1"}:               {16200, 9},
	{Group: "resource.k8s.io", Version: "v1alpha3"}:              {16200, 1},
	{Group: "flowcontrol.apiserver.k8s.io", Version: "v1"}:       {16100, 21},
	{Group: "flowcontrol.apiserver.k8s.io", Version: "v1beta3"}:  {16100, 18},
	{Group: "flowcontrol.apiserver.k8s.io", Version: "v1beta2"}:  {16100, 15},
	{Group: "flowcontrol.apiserver.k8s.io", Version: "v1beta1"}:  {16100, 12},
	{Group: "flowcontrol.apiserver.k8s.io", Version: "v1alpha1"}: {16100, 9},
	{Group: "internal.apiserver.k8s.io", Version: "v1alpha1"}:    {16000, 9},
	{Group: "storagemigration.k8s.io", Version: "v1"}:            {15800, 15},
	{Group: "storagemigration.k8s.io", Version: "v1beta1"}:       {15800, 9},
	{Group: "lifecycle.k8s.io", Version: "v1alpha1"}:             {15700, 1},
}

// LocalAPIServices returns the APIServices kube-apiserver registers at
// start for the group versions it serves itself ("v1.", "v1.apps", ...):
// no service, labelled automanaged=onstart, Available=True "Local".
// Group versions without a known priority are skipped, as upstream skips
// them, so that no APIService outlives a group that is gone.
func LocalAPIServices(gvs []schema.GroupVersion) []*apiregistrationv1.APIService {
	var out []*apiregistrationv1.APIService
	for _, gv := range gvs {
		p, ok := localAPIServicePriorities[gv]
		if !ok {
			continue
		}
		out = append(out, &apiregistrationv1.APIService{
			TypeMeta: metav1.TypeMeta{APIVersion: apiregistrationv1.SchemeGroupVersion.String(), Kind: "APIService"},
			ObjectMeta: metav1.ObjectMeta{
				Name:   gv.Version + "." + gv.Group,
				Labels: map[string]string{AutomanagedLabel: "onstart"},
			},
			Spec: apiregistrationv1.APIServiceSpec{
				Group: gv.Group, Version: gv.Version,
				GroupPriorityMinimum: p.group, VersionPriority: p.version,
			},
			Status: apiregistrationv1.APIServiceStatus{Conditions: []apiregistrationv1.APIServiceCondition{localAvailable()}},
		})
	}
	return out
}
