package deployment

import (
	"context"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// maxRevisionHistoryChars bounds the revision-history annotation, as
// upstream's default for the controller.
const maxRevisionHistoryChars = 2000

// notCopied are the deployment annotations that describe the deployment
// itself (or kubectl's bookkeeping), never its replica sets.
var notCopied = map[string]bool{
	"kubectl.kubernetes.io/last-applied-configuration": true,
	"deprecated.deployment.rollback.to":                true,
	RevisionAnnotation:                                 true,
	RevisionHistoryAnnotation:                          true,
	DesiredReplicasAnnotation:                          true,
	MaxReplicasAnnotation:                              true,
}

// copyAnnotations gives rs the deployment's own annotations (the
// change-cause among them), so kubectl rollout history can list each
// revision with what caused it. It reports whether rs changed.
func copyAnnotations(d *appsv1.Deployment, rs *appsv1.ReplicaSet) bool {
	changed := false
	for k, v := range d.Annotations {
		if notCopied[k] {
			continue
		}
		if cur, ok := rs.Annotations[k]; ok && cur == v {
			continue
		}
		if rs.Annotations == nil {
			rs.Annotations = map[string]string{}
		}
		rs.Annotations[k] = v
		changed = true
	}
	return changed
}

// setRevision makes rev the set's revision unless it already has a newer
// one; a set that had an older revision (a rollback to it) keeps that in
// its revision history.
func setRevision(rs *appsv1.ReplicaSet, rev int64) bool {
	cur := revisionOf(rs)
	if cur >= rev {
		return false
	}
	if rs.Annotations == nil {
		rs.Annotations = map[string]string{}
	}
	if old, ok := rs.Annotations[RevisionAnnotation]; ok && old != "" {
		rs.Annotations[RevisionHistoryAnnotation] = appendHistory(rs.Annotations[RevisionHistoryAnnotation], old)
	}
	rs.Annotations[RevisionAnnotation] = strconv.FormatInt(rev, 10)
	return true
}

// appendHistory adds old to a comma-separated history, dropping the
// oldest entries to stay within maxRevisionHistoryChars.
func appendHistory(history, old string) string {
	var revs []string
	if history != "" {
		revs = strings.Split(history, ",")
	}
	revs = append(revs, old)
	for len(revs) > 1 && len(strings.Join(revs, ",")) > maxRevisionHistoryChars {
		revs = revs[1:]
	}
	return strings.Join(revs, ",")
}

// setReplicaAnnotations records the deployment's size on a set that lacks
// it, as a newly created set would have.
func setReplicaAnnotations(d *appsv1.Deployment, rs *appsv1.ReplicaSet) bool {
	changed := false
	for k, v := range map[string]string{
		DesiredReplicasAnnotation: strconv.Itoa(int(replicasOf(d.Spec.Replicas))),
		MaxReplicasAnnotation:     strconv.Itoa(int(replicasOf(d.Spec.Replicas) + maxSurge(d))),
	} {
		if _, ok := rs.Annotations[k]; ok {
			continue
		}
		if rs.Annotations == nil {
			rs.Annotations = map[string]string{}
		}
		rs.Annotations[k] = v
		changed = true
	}
	return changed
}

// syncNewAnnotations brings the current set's annotations up to date: the
// deployment's annotations, the newest revision, and its size.
func (c *Controller) syncNewAnnotations(ctx context.Context, d *appsv1.Deployment, newRS *appsv1.ReplicaSet, all []*appsv1.ReplicaSet) error {
	rs := newRS.DeepCopy()
	changed := copyAnnotations(d, rs)
	changed = setRevision(rs, maxRevision(oldSets(all, newRS))+1) || changed
	changed = setReplicaAnnotations(d, rs) || changed
	if !changed {
		return nil
	}
	updated, err := c.client.AppsV1().ReplicaSets(rs.Namespace).Update(ctx, rs, metav1.UpdateOptions{})
	if err != nil {
		return err
	}
	*newRS = *updated
	return nil
}

// syncDeploymentRevision gives the deployment the revision of its current
// set, which kubectl rollout history and the conformance suite read from
// the deployment itself. Like upstream it is written through the status
// subresource, which accepts metadata annotations.
func (c *Controller) syncDeploymentRevision(ctx context.Context, d *appsv1.Deployment, newRS *appsv1.ReplicaSet) error {
	rev, ok := newRS.Annotations[RevisionAnnotation]
	if !ok || d.Annotations[RevisionAnnotation] == rev {
		return nil
	}
	if d.Annotations == nil {
		d.Annotations = map[string]string{}
	}
	d.Annotations[RevisionAnnotation] = rev
	updated, err := c.client.AppsV1().Deployments(d.Namespace).UpdateStatus(ctx, d, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	*d = *updated
	return nil
}
