package csi

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	v1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
)

// RepublishInterval is the least time between two NodePublishVolume calls
// for a mounted volume of a driver with requiresRepublish; the pod's syncs
// drive them (upstream: every sync of the pod).
const RepublishInterval = 60 * time.Second

// tokensKey is the volume context key of a CSIDriver's tokenRequests.
const tokensKey = "csi.storage.k8s.io/serviceAccount.tokens"

// publishState is what the manager remembers of a published pod volume.
type publishState struct {
	at        time.Time // of the last NodePublishVolume (or attempt)
	republish bool      // the driver requires republishing
}

// republishDue says whether a published volume is to be published again
// now. A volume the manager knows nothing of (the kubelet restarted) is
// due, so its driver is looked up once. The attempt is noted before it
// is made: a failing republish is tried at most once per interval too.
func (m *Manager) republishDue(dir string) bool {
	now := m.cfg.Clock.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if st, ok := m.published[dir]; ok && (!st.republish || now.Sub(st.at) < RepublishInterval) {
		return false
	}
	m.published[dir] = publishState{at: now, republish: true}
	return true
}

// notePublished records a publish of the volume in dir.
func (m *Manager) notePublished(dir string, republish bool) {
	now := m.cfg.Clock.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.published[dir] = publishState{at: now, republish: republish}
}

func (m *Manager) forgetPublished(dir string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.published, dir)
}

// republishFailed reports a failed republish; the volume stays mounted
// and the next due sync tries again.
func (m *Manager) republishFailed(pod *v1.Pod, volume string, err error) {
	m.log.Warn("republish CSI volume", "pod", pod.Namespace+"/"+pod.Name, "volume", volume, "err", err)
	if m.cfg.Recorder == nil {
		return
	}
	if rec := m.cfg.Recorder(); rec != nil {
		rec.Eventf(pod, v1.EventTypeWarning, "FailedMount", "MountVolume.SetUp failed to republish CSI volume %q: %v", volume, err)
	}
}

func requiresRepublish(d *storagev1.CSIDriver) bool {
	return d != nil && d.Spec.RequiresRepublish != nil && *d.Spec.RequiresRepublish
}

// withTokens adds to a volume context the ServiceAccount tokens the
// CSIDriver's tokenRequests ask for, as upstream's kubelet does: JSON of
// audience → {token, expirationTimestamp}.
func (m *Manager) withTokens(ctx context.Context, volCtx map[string]string, pod *v1.Pod, d *storagev1.CSIDriver) (map[string]string, error) {
	if d == nil || len(d.Spec.TokenRequests) == 0 {
		return volCtx, nil
	}
	if m.cfg.Tokens == nil {
		return nil, fmt.Errorf("CSI driver %s requests service account tokens, which this kubelet cannot issue", d.Name)
	}
	tokens := make(map[string]authenticationv1.TokenRequestStatus, len(d.Spec.TokenRequests))
	for _, tr := range d.Spec.TokenRequests {
		st, err := m.cfg.Tokens.PodToken(ctx, pod, tr.Audience, tr.ExpirationSeconds)
		if err != nil {
			return nil, fmt.Errorf("CSI driver %s: service account token for audience %q: %w", d.Name, tr.Audience, err)
		}
		tokens[tr.Audience] = st
	}
	b, _ := json.Marshal(tokens) // strings and times: cannot fail
	out := maps.Clone(volCtx)
	if out == nil {
		out = map[string]string{}
	}
	out[tokensKey] = string(b)
	return out, nil
}
