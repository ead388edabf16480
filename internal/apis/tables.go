package apis

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/duration"
)

// HumanAge formats the time since t as kubectl does ("5s", "3m2s", "4h",
// "2d3h"), with apimachinery's formatter.
func HumanAge(t, now time.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(now.Sub(t))
}

func col(name, typ, desc string, priority int32) metav1.TableColumnDefinition {
	return metav1.TableColumnDefinition{Name: name, Type: typ, Description: desc, Priority: priority}
}

func age(obj runtime.Object) string {
	m := obj.(metav1.ObjectMetaAccessor).GetObjectMeta()
	return HumanAge(m.GetCreationTimestamp().Time, time.Now())
}

var ageCol = col("Age", "string", "CreationTimestamp is a timestamp representing the server time when this object was created.", 0)

func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}

func selectorString(sel *metav1.LabelSelector) string {
	if sel == nil {
		return "<none>"
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return "<error>"
	}
	return orNone(s.String())
}

func mapSelector(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return orNone(strings.Join(parts, ","))
}

func containersAndImages(spec *corev1.PodSpec) (string, string) {
	names := make([]string, len(spec.Containers))
	images := make([]string, len(spec.Containers))
	for i, c := range spec.Containers {
		names[i], images[i] = c.Name, c.Image
	}
	return strings.Join(names, ","), strings.Join(images, ",")
}

var (
	containersCol = col("Containers", "string", "Names of each container in the template.", 1)
	imagesCol     = col("Images", "string", "Images referenced by each container in the template.", 1)
	selectorCol   = col("Selector", "string", "Label selector for pods.", 1)
)

// tableFor returns the columns and row function of a kind.
func tableFor(kind string) ([]metav1.TableColumnDefinition, func(runtime.Object) []any) {
	switch kind {
	case "Pod":
		return []metav1.TableColumnDefinition{
			col("Ready", "string", "The aggregate readiness state of this pod for accepting traffic.", 0),
			col("Status", "string", "The aggregate status of the containers in this pod.", 0),
			col("Restarts", "string", "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.", 0),
			ageCol,
			col("IP", "string", "IP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.", 1),
			col("Node", "string", "NodeName is a request to schedule this pod onto a specific node.", 1),
			col("Nominated Node", "string", "nominatedNodeName is set only when this pod preempts other pods on the node.", 1),
			col("Readiness Gates", "string", "If specified, all readiness gates will be evaluated for pod readiness.", 1),
		}, podRow
	case "Deployment":
		return []metav1.TableColumnDefinition{
				col("Ready", "string", "Number of the pod with ready state", 0),
				col("Up-to-date", "string", "Total number of non-terminated pods targeted by this deployment that have the desired template spec.", 0),
				col("Available", "string", "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.", 0),
				ageCol, containersCol, imagesCol, selectorCol,
			}, func(o runtime.Object) []any {
				d := o.(*appsv1.Deployment)
				c, i := containersAndImages(&d.Spec.Template.Spec)
				return []any{fmt.Sprintf("%d/%d", d.Status.ReadyReplicas, deref32(d.Spec.Replicas)), int64(d.Status.UpdatedReplicas),
					int64(d.Status.AvailableReplicas), age(o), c, i, selectorString(d.Spec.Selector)}
			}
	case "ReplicaSet":
		return []metav1.TableColumnDefinition{
				col("Desired", "integer", "Number of desired pods.", 0),
				col("Current", "integer", "Number of actual replicas.", 0),
				col("Ready", "integer", "The number of ready replicas for this replica set.", 0),
				ageCol, containersCol, imagesCol, selectorCol,
			}, func(o runtime.Object) []any {
				r := o.(*appsv1.ReplicaSet)
				c, i := containersAndImages(&r.Spec.Template.Spec)
				return []any{int64(deref32(r.Spec.Replicas)), int64(r.Status.Replicas), int64(r.Status.ReadyReplicas), age(o), c, i, selectorString(r.Spec.Selector)}
			}
	case "ReplicationController":
		return []metav1.TableColumnDefinition{
				col("Desired", "integer", "Number of desired pods.", 0),
				col("Current", "integer", "Number of actual replicas.", 0),
				col("Ready", "integer", "The number of ready replicas for this replication controller.", 0),
				ageCol, containersCol, imagesCol, selectorCol,
			}, func(o runtime.Object) []any {
				r := o.(*corev1.ReplicationController)
				c, i := "", ""
				if r.Spec.Template != nil {
					c, i = containersAndImages(&r.Spec.Template.Spec)
				}
				return []any{int64(deref32(r.Spec.Replicas)), int64(r.Status.Replicas), int64(r.Status.ReadyReplicas), age(o), c, i, mapSelector(r.Spec.Selector)}
			}
	case "StatefulSet":
		return []metav1.TableColumnDefinition{
				col("Ready", "string", "Number of the pod with ready state", 0),
				ageCol, containersCol, imagesCol,
			}, func(o runtime.Object) []any {
				s := o.(*appsv1.StatefulSet)
				c, i := containersAndImages(&s.Spec.Template.Spec)
				return []any{fmt.Sprintf("%d/%d", s.Status.ReadyReplicas, deref32(s.Spec.Replicas)), age(o), c, i}
			}
	case "DaemonSet":
		return []metav1.TableColumnDefinition{
				col("Desired", "integer", "The total number of nodes that should be running the daemon pod.", 0),
				col("Current", "integer", "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod.", 0),
				col("Ready", "integer", "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and ready.", 0),
				col("Up-to-date", "integer", "The total number of nodes that are running updated daemon pod", 0),
				col("Available", "integer", "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available.", 0),
				col("Node Selector", "string", "NodeSelector is a selector which must be true for the pod to fit on a node.", 0),
				ageCol, containersCol, imagesCol, selectorCol,
			}, func(o runtime.Object) []any {
				d := o.(*appsv1.DaemonSet)
				c, i := containersAndImages(&d.Spec.Template.Spec)
				return []any{int64(d.Status.DesiredNumberScheduled), int64(d.Status.CurrentNumberScheduled), int64(d.Status.NumberReady),
					int64(d.Status.UpdatedNumberScheduled), int64(d.Status.NumberAvailable), mapSelector(d.Spec.Template.Spec.NodeSelector), age(o), c, i, selectorString(d.Spec.Selector)}
			}
	case "Job":
		return []metav1.TableColumnDefinition{
				col("Status", "string", "Status of the job.", 0),
				col("Completions", "string", "The desired number of successfully finished pods the job should be run with.", 0),
				col("Duration", "string", "Time required to complete the job.", 0),
				ageCol, containersCol, imagesCol, selectorCol,
			}, func(o runtime.Object) []any {
				j := o.(*batchv1.Job)
				c, i := containersAndImages(&j.Spec.Template.Spec)
				completions := fmt.Sprintf("%d/%d", j.Status.Succeeded, deref32(j.Spec.Completions))
				if j.Spec.Completions == nil {
					completions = fmt.Sprintf("%d/1 of %d", j.Status.Succeeded, deref32(j.Spec.Parallelism))
				}
				duration := ""
				if j.Status.StartTime != nil {
					end := time.Now()
					if j.Status.CompletionTime != nil {
						end = j.Status.CompletionTime.Time
					}
					duration = HumanAge(j.Status.StartTime.Time, end)
				}
				return []any{jobStatus(j), completions, duration, age(o), c, i, selectorString(j.Spec.Selector)}
			}
	case "CronJob":
		return []metav1.TableColumnDefinition{
				col("Schedule", "string", "The schedule in Cron format.", 0),
				col("Timezone", "string", "The time zone name for the given schedule.", 0),
				col("Suspend", "boolean", "This flag tells the controller to suspend subsequent executions.", 0),
				col("Active", "integer", "A list of pointers to currently running jobs.", 0),
				col("Last Schedule", "string", "Information when was the last time the job was successfully scheduled.", 0),
				ageCol, containersCol, imagesCol, selectorCol,
			}, func(o runtime.Object) []any {
				cj := o.(*batchv1.CronJob)
				c, i := containersAndImages(&cj.Spec.JobTemplate.Spec.Template.Spec)
				last := "<none>"
				if cj.Status.LastScheduleTime != nil {
					last = HumanAge(cj.Status.LastScheduleTime.Time, time.Now())
				}
				tz := "<none>"
				if cj.Spec.TimeZone != nil {
					tz = *cj.Spec.TimeZone
				}
				return []any{cj.Spec.Schedule, tz, cj.Spec.Suspend != nil && *cj.Spec.Suspend, int64(len(cj.Status.Active)), last, age(o), c, i, selectorString(cj.Spec.JobTemplate.Spec.Selector)}
			}
	case "Service":
		return []metav1.TableColumnDefinition{
			col("Type", "string", "type determines how the Service is exposed.", 0),
			col("Cluster-IP", "string", "clusterIP is the IP address of the service.", 0),
			col("External-IP", "string", "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.", 0),
			col("Port(s)", "string", "The list of ports that are exposed by this service.", 0),
			ageCol,
			col("Selector", "string", "Route service traffic to pods with label keys and values matching this selector.", 1),
		}, serviceRow
	case "Endpoints":
		return []metav1.TableColumnDefinition{
				col("Endpoints", "string", "Endpoints of the service.", 0), ageCol,
			}, func(o runtime.Object) []any {
				e := o.(*corev1.Endpoints)
				var parts []string
				for _, s := range e.Subsets {
					for _, a := range s.Addresses {
						for _, p := range s.Ports {
							parts = append(parts, fmt.Sprintf("%s:%d", a.IP, p.Port))
						}
						if len(s.Ports) == 0 {
							parts = append(parts, a.IP)
						}
					}
				}
				return []any{orNone(strings.Join(parts, ",")), age(o)}
			}
	case "Namespace":
		return []metav1.TableColumnDefinition{
			col("Status", "string", "The status of the namespace", 0), ageCol,
		}, func(o runtime.Object) []any { return []any{string(o.(*corev1.Namespace).Status.Phase), age(o)} }
	case "ConfigMap":
		return []metav1.TableColumnDefinition{
				col("Data", "integer", "Number of data entries.", 0), ageCol,
			}, func(o runtime.Object) []any {
				c := o.(*corev1.ConfigMap)
				return []any{int64(len(c.Data) + len(c.BinaryData)), age(o)}
			}
	case "Secret":
		return []metav1.TableColumnDefinition{
				col("Type", "string", "The type of the secret", 0),
				col("Data", "integer", "Number of data entries.", 0), ageCol,
			}, func(o runtime.Object) []any {
				s := o.(*corev1.Secret)
				return []any{string(s.Type), int64(len(s.Data)), age(o)}
			}
	case "ServiceAccount":
		return []metav1.TableColumnDefinition{
			col("Secrets", "string", "Secrets is the list of secrets allowed to be used by pods running using this ServiceAccount", 0), ageCol,
		}, func(o runtime.Object) []any { return []any{int64(len(o.(*corev1.ServiceAccount).Secrets)), age(o)} }
	case "Node":
		return []metav1.TableColumnDefinition{
			col("Status", "string", "The status of the node", 0),
			col("Roles", "string", "The roles of the node", 0),
			ageCol,
			col("Version", "string", "Kubelet Version reported by the node.", 0),
			col("Internal-IP", "string", "List of addresses reachable to the node.", 1),
			col("External-IP", "string", "List of addresses reachable to the node.", 1),
			col("OS-Image", "string", "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).", 1),
			col("Kernel-Version", "string", "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).", 1),
			col("Container-Runtime", "string", "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).", 1),
		}, nodeRow
	case "PersistentVolumeClaim":
		return []metav1.TableColumnDefinition{
				col("Status", "string", "The status of the claim", 0),
				col("Volume", "string", "VolumeName is the binding reference to the PersistentVolume backing this claim.", 0),
				col("Capacity", "string", "Actual resources of the volume", 0),
				col("Access Modes", "string", "AccessModes contains the actual access modes the volume backing the PVC has.", 0),
				col("StorageClass", "string", "StorageClassName of the claim", 0),
				col("VolumeAttributesClass", "string", "VolumeAttributesClassName of the claim", 0),
				ageCol,
				col("VolumeMode", "string", "volumeMode defines what type of volume is required by the claim.", 1),
			}, func(o runtime.Object) []any {
				c := o.(*corev1.PersistentVolumeClaim)
				capacity := ""
				if q, ok := c.Status.Capacity[corev1.ResourceStorage]; ok {
					capacity = q.String()
				}
				mode := "<unset>"
				if c.Spec.VolumeMode != nil {
					mode = string(*c.Spec.VolumeMode)
				}
				return []any{string(c.Status.Phase), c.Spec.VolumeName, capacity, accessModes(c.Status.AccessModes),
					derefStr(c.Spec.StorageClassName), "<unset>", age(o), mode}
			}
	case "PersistentVolume":
		return []metav1.TableColumnDefinition{
				col("Capacity", "string", "capacity is the description of the persistent volume's resources and capacity.", 0),
				col("Access Modes", "string", "accessModes contains all ways the volume can be mounted.", 0),
				col("Reclaim Policy", "string", "persistentVolumeReclaimPolicy defines what happens to a persistent volume when released from its claim.", 0),
				col("Status", "string", "phase indicates if a volume is available, bound to a claim, or released by a claim.", 0),
				col("Claim", "string", "claimRef is part of a bi-directional binding between PersistentVolume and PersistentVolumeClaim.", 0),
				col("StorageClass", "string", "storageClassName is the name of StorageClass to which this persistent volume belongs.", 0),
				col("VolumeAttributesClass", "string", "Name of VolumeAttributesClass to which this persistent volume belongs.", 0),
				col("Reason", "string", "reason is a brief CamelCase string that describes any failure.", 0),
				ageCol,
				col("VolumeMode", "string", "volumeMode defines if a volume is intended to be used with a formatted filesystem or to remain in raw block state.", 1),
			}, func(o runtime.Object) []any {
				v := o.(*corev1.PersistentVolume)
				capacity := ""
				if q, ok := v.Spec.Capacity[corev1.ResourceStorage]; ok {
					capacity = q.String()
				}
				claim := ""
				if v.Spec.ClaimRef != nil {
					claim = v.Spec.ClaimRef.Namespace + "/" + v.Spec.ClaimRef.Name
				}
				mode := "<unset>"
				if v.Spec.VolumeMode != nil {
					mode = string(*v.Spec.VolumeMode)
				}
				return []any{capacity, accessModes(v.Spec.AccessModes), string(v.Spec.PersistentVolumeReclaimPolicy), string(v.Status.Phase),
					claim, v.Spec.StorageClassName, "<unset>", v.Status.Reason, age(o), mode}
			}
	}
	return moreTables(kind)
}

func accessModes(modes []corev1.PersistentVolumeAccessMode) string {
	short := map[corev1.PersistentVolumeAccessMode]string{
		corev1.ReadWriteOnce: "RWO", corev1.ReadOnlyMany: "ROX", corev1.ReadWriteMany: "RWX", corev1.ReadWriteOncePod: "RWOP",
	}
	parts := make([]string, 0, len(modes))
	for _, m := range modes {
		parts = append(parts, short[m])
	}
	return strings.Join(parts, ",")
}

func deref32(p *int32) int32 {
	if p == nil {
		return 0
	}
	return *p
}

func derefStr(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// jobStatus is the STATUS column: terminal conditions win over the
// intermediate ones that precede them.
func jobStatus(j *batchv1.Job) string {
	has := func(t batchv1.JobConditionType) bool {
		for _, c := range j.Status.Conditions {
			if c.Type == t && c.Status == corev1.ConditionTrue {
				return true
			}
		}
		return false
	}
	switch {
	case has(batchv1.JobComplete):
		return "Complete"
	case has(batchv1.JobFailed):
		return "Failed"
	case j.DeletionTimestamp != nil:
		return "Terminating"
	case has(batchv1.JobSuccessCriteriaMet):
		return "SuccessCriteriaMet"
	case has(batchv1.JobFailureTarget):
		return "FailureTarget"
	case has(batchv1.JobSuspended):
		return "Suspended"
	}
	return "Running"
}

func podRow(o runtime.Object) []any {
	p := o.(*corev1.Pod)
	ready, restarts := 0, int64(0)
	var lastRestart time.Time
	for _, cs := range p.Status.ContainerStatuses {
		if cs.Ready {
			ready++
		}
		restarts += int64(cs.RestartCount)
		if t := cs.LastTerminationState.Terminated; t != nil && t.FinishedAt.After(lastRestart) {
			lastRestart = t.FinishedAt.Time
		}
	}
	restartStr := strconv.FormatInt(restarts, 10)
	if restarts > 0 && !lastRestart.IsZero() {
		restartStr = fmt.Sprintf("%d (%s ago)", restarts, HumanAge(lastRestart, time.Now()))
	}
	gates := "<none>"
	if n := len(p.Spec.ReadinessGates); n > 0 {
		met := 0
		for _, g := range p.Spec.ReadinessGates {
			for _, c := range p.Status.Conditions {
				if c.Type == g.ConditionType && c.Status == corev1.ConditionTrue {
					met++
				}
			}
		}
		gates = fmt.Sprintf("%d/%d", met, n)
	}
	return []any{fmt.Sprintf("%d/%d", ready, len(p.Spec.Containers)), PodStatus(p), restartStr, age(o),
		orNone(p.Status.PodIP), orNone(p.Spec.NodeName), orNone(p.Status.NominatedNodeName), gates}
}

// PodStatus is the one-word status kubectl prints for a pod.
func PodStatus(p *corev1.Pod) string {
	reason := string(p.Status.Phase)
	if p.Status.Reason != "" {
		reason = p.Status.Reason
	}
	initializing := false
	for i, cs := range p.Status.InitContainerStatuses {
		switch {
		case cs.State.Terminated != nil && cs.State.Terminated.ExitCode == 0:
			continue
		case cs.State.Terminated != nil:
			reason = "Init:" + orElse(cs.State.Terminated.Reason, fmt.Sprintf("ExitCode:%d", cs.State.Terminated.ExitCode))
		case cs.State.Waiting != nil && cs.State.Waiting.Reason != "" && cs.State.Waiting.Reason != "PodInitializing":
			reason = "Init:" + cs.State.Waiting.Reason
		default:
			reason = fmt.Sprintf("Init:%d/%d", i, len(p.Spec.InitContainers))
		}
		initializing = true
		break
	}
	if !initializing {
		running := false
		for i := len(p.Status.ContainerStatuses) - 1; i >= 0; i-- {
			cs := p.Status.ContainerStatuses[i]
			switch {
			case cs.State.Waiting != nil && cs.State.Waiting.Reason != "":
				reason = cs.State.Waiting.Reason
			case cs.State.Terminated != nil && cs.State.Terminated.Reason != "":
				reason = cs.State.Terminated.Reason
			case cs.State.Terminated != nil:
				if cs.State.Terminated.Signal != 0 {
					reason = fmt.Sprintf("Signal:%d", cs.State.Terminated.Signal)
				} else {
					reason = fmt.Sprintf("ExitCode:%d", cs.State.Terminated.ExitCode)
				}
			case cs.Ready && cs.State.Running != nil:
				running = true
			}
		}
		if reason == "Completed" && running {
			reason = "Running"
		}
	}
	if p.DeletionTimestamp != nil {
		if p.Status.Reason == "NodeLost" {
			return "Unknown"
		}
		return "Terminating"
	}
	return reason
}

func orElse(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func serviceRow(o runtime.Object) []any {
	s := o.(*corev1.Service)
	ext := "<none>"
	switch s.Spec.Type {
	case corev1.ServiceTypeExternalName:
		ext = s.Spec.ExternalName
	case corev1.ServiceTypeLoadBalancer:
		var ips []string
		for _, in := range s.Status.LoadBalancer.Ingress {
			ips = append(ips, orElse(in.IP, in.Hostname))
		}
		ips = append(ips, s.Spec.ExternalIPs...)
		ext = "<pending>"
		if len(ips) > 0 {
			ext = strings.Join(ips, ",")
		}
	default:
		if len(s.Spec.ExternalIPs) > 0 {
			ext = strings.Join(s.Spec.ExternalIPs, ",")
		}
	}
	var ports []string
	for _, p := range s.Spec.Ports {
		if p.NodePort != 0 {
			ports = append(ports, fmt.Sprintf("%d:%d/%s", p.Port, p.NodePort, p.Protocol))
		} else {
			ports = append(ports, fmt.Sprintf("%d/%s", p.Port, p.Protocol))
		}
	}
	clusterIP := s.Spec.ClusterIP
	if clusterIP == "" {
		clusterIP = "<none>"
	}
	return []any{string(s.Spec.Type), clusterIP, ext, orNone(strings.Join(ports, ",")), age(o), mapSelector(s.Spec.Selector)}
}

func nodeRow(o runtime.Object) []any {
	n := o.(*corev1.Node)
	status := "Unknown"
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			if c.Status == corev1.ConditionTrue {
				status = "Ready"
			} else {
				status = "NotReady"
			}
		}
	}
	if n.Spec.Unschedulable {
		status += ",SchedulingDisabled"
	}
	var roles []string
	for k := range n.Labels {
		if r, ok := strings.CutPrefix(k, "node-role.kubernetes.io/"); ok && r != "" {
			roles = append(roles, r)
		}
	}
	sort.Strings(roles)
	internal, external := "<none>", "<none>"
	for _, a := range n.Status.Addresses {
		switch a.Type {
		case corev1.NodeInternalIP:
			if internal == "<none>" {
				internal = a.Address
			}
		case corev1.NodeExternalIP:
			if external == "<none>" {
				external = a.Address
			}
		}
	}
	info := n.Status.NodeInfo
	return []any{status, orNone(strings.Join(roles, ",")), age(o), info.KubeletVersion, internal, external,
		orElse(info.OSImage, "<unknown>"), orElse(info.KernelVersion, "<unknown>"), orElse(info.ContainerRuntimeVersion, "<unknown>")}
}
