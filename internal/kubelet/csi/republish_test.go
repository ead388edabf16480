package csi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	authenticationv1 "k8s.io/api/authentication/v1"
	v1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/record"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
)

var testStart = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

type tokenCall struct {
	pod      string
	audience string
	exp      *int64
}

// fakeTokens issues numbered tokens expiring expirationSeconds (default
// 3600) after the clock's now, and records the requests.
type fakeTokens struct {
	clock *clocktesting.FakeClock
	mu    sync.Mutex
	fail  error
	calls []tokenCall
}

func (f *fakeTokens) PodToken(_ context.Context, pod *v1.Pod, audience string, exp *int64) (authenticationv1.TokenRequestStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return authenticationv1.TokenRequestStatus{}, f.fail
	}
	f.calls = append(f.calls, tokenCall{pod: string(pod.UID), audience: audience, exp: exp})
	secs := int64(3600)
	if exp != nil {
		secs = *exp
	}
	return authenticationv1.TokenRequestStatus{
		Token:               fmt.Sprintf("%s-token-%d", audience, len(f.calls)),
		ExpirationTimestamp: metav1.NewTime(f.clock.Now().Add(time.Duration(secs) * time.Second)),
	}, nil
}

func (f *fakeTokens) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

// newTokenEnv is a registered staging driver whose CSIDriver object has
// the spec given, a fake clock and fake tokens.
func newTokenEnv(t *testing.T, spec storagev1.CSIDriverSpec) (*testEnv, *clocktesting.FakeClock, *fakeTokens) {
	t.Helper()
	env := newRegisteredEnv(t, true)
	spec.AttachRequired = ptr.To(false)
	d := &storagev1.CSIDriver{ObjectMeta: metav1.ObjectMeta{Name: testDriver}, Spec: spec}
	if _, err := env.client.StorageV1().CSIDrivers().Create(t.Context(), d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	clk := clocktesting.NewFakeClock(testStart)
	tokens := &fakeTokens{clock: clk}
	env.m.cfg.Clock, env.m.cfg.Tokens = clk, tokens
	return env, clk, tokens
}

func plainPV(handle string) *v1.PersistentVolume {
	pv := testPV(handle)
	pv.Spec.CSI.NodeStageSecretRef, pv.Spec.CSI.NodePublishSecretRef = nil, nil
	return pv
}

// publishedTokens decodes the tokens of a publish request's volume context.
func publishedTokens(t *testing.T, req *csipb.NodePublishVolumeRequest) map[string]authenticationv1.TokenRequestStatus {
	t.Helper()
	raw, ok := req.VolumeContext[tokensKey]
	if !ok {
		t.Fatalf("volume context %v has no %s", req.VolumeContext, tokensKey)
	}
	var out map[string]authenticationv1.TokenRequestStatus
	if err := json.Unmarshal([]byte(raw), &out); err != nil {
		t.Fatalf("tokens %q: %v", raw, err)
	}
	return out
}

func TestTokenRequestsInVolumeContext(t *testing.T) {
	env, _, tokens := newTokenEnv(t, storagev1.CSIDriverSpec{
		PodInfoOnMount: ptr.To(true),
		TokenRequests: []storagev1.TokenRequest{
			{Audience: "vault", ExpirationSeconds: ptr.To[int64](7200)},
			{Audience: ""}, // the API server's audiences
		},
	})
	pod := testPod("uid-t")
	if _, err := env.m.SetUpPersistent(t.Context(), pod, "data", plainPV("vol-t"), false); err != nil {
		t.Fatal(err)
	}
	pubs := callsOf[*csipb.NodePublishVolumeRequest](env.node)
	if len(pubs) != 1 {
		t.Fatalf("NodePublishVolume calls = %d, want 1", len(pubs))
	}
	raw := pubs[0].VolumeContext[tokensKey]
	wantVault := `"vault":{"token":"vault-token-1","expirationTimestamp":"2026-03-01T14:00:00Z"}`
	if !strings.Contains(raw, wantVault) {
		t.Errorf("tokens = %s, want the vault token as %s", raw, wantVault)
	}
	got := publishedTokens(t, pubs[0])
	if len(got) != 2 || got[""].Token != "-token-2" || !got[""].ExpirationTimestamp.Time.Equal(testStart.Add(time.Hour)) {
		t.Errorf("tokens = %+v, want vault's and the default audience's (expiring in an hour)", got)
	}
	if len(tokens.calls) != 2 || tokens.calls[0].pod != "uid-t" || *tokens.calls[0].exp != 7200 || tokens.calls[1].exp != nil {
		t.Errorf("token requests = %+v", tokens.calls)
	}
	// podInfoOnMount is kept beside the tokens, and the attributes too.
	vc := pubs[0].VolumeContext
	if vc["csi.storage.k8s.io/pod.name"] != "pod-uid-t" || vc["csi.storage.k8s.io/serviceAccount.name"] != "sa" ||
		vc["csi.storage.k8s.io/ephemeral"] != "false" || vc["size"] != "1Gi" {
		t.Errorf("volume context = %v", vc)
	}
	// Only publish gets tokens; stage is per node, not per pod.
	if st := callsOf[*csipb.NodeStageVolumeRequest](env.node); len(st) != 1 || st[0].VolumeContext[tokensKey] != "" {
		t.Errorf("stage requests = %v, want one without tokens", st)
	}
}

func TestNoTokensWithoutTokenRequests(t *testing.T) {
	env, _, tokens := newTokenEnv(t, storagev1.CSIDriverSpec{})
	ctx := t.Context()
	if _, err := env.m.SetUpPersistent(ctx, testPod("uid-n"), "data", plainPV("vol-n"), false); err != nil {
		t.Fatal(err)
	}
	p := callsOf[*csipb.NodePublishVolumeRequest](env.node)[0]
	if _, ok := p.VolumeContext[tokensKey]; ok || tokens.count() != 0 {
		t.Errorf("volume context %v after %d token requests, want no tokens", p.VolumeContext, tokens.count())
	}
}

func TestTokenRequestFailureFailsPublish(t *testing.T) {
	env, _, tokens := newTokenEnv(t, storagev1.CSIDriverSpec{
		TokenRequests: []storagev1.TokenRequest{{Audience: "vault"}},
	})
	tokens.fail = errors.New("serviceaccounts \"sa\" is forbidden")
	pod := testPod("uid-f")
	_, err := env.m.SetUpPersistent(t.Context(), pod, "data", plainPV("vol-f"), false)
	if err == nil || !strings.Contains(err.Error(), `service account token for audience "vault"`) || !errors.Is(err, tokens.fail) {
		t.Fatalf("err = %v, want the token failure for audience vault", err)
	}
	if n := len(env.node.calls); n != 0 {
		t.Errorf("driver got %d calls though no token could be had", n)
	}
	if r, err := readRecord(env.m.PodVolumeDir(pod.UID, "data")); err == nil && r.Published {
		t.Error("volume recorded as published")
	}

	// A kubelet that cannot issue tokens says so.
	env.m.cfg.Tokens = nil
	if _, err := env.m.SetUpPersistent(t.Context(), pod, "data", plainPV("vol-f"), false); err == nil || !strings.Contains(err.Error(), "cannot issue") {
		t.Fatalf("err = %v, want a refusal without a token source", err)
	}
}

func TestRequiresRepublish(t *testing.T) {
	env, clk, tokens := newTokenEnv(t, storagev1.CSIDriverSpec{
		RequiresRepublish: ptr.To(true),
		TokenRequests:     []storagev1.TokenRequest{{Audience: "vault", ExpirationSeconds: ptr.To[int64](600)}},
	})
	events := record.NewFakeRecorder(4)
	env.m.cfg.Recorder = func() record.EventRecorder { return events }
	ctx := t.Context()
	pod := testPod("uid-r")
	pv := plainPV("vol-r")
	setUp := func() {
		t.Helper()
		if _, err := env.m.SetUpPersistent(ctx, pod, "data", pv, false); err != nil {
			t.Fatal(err)
		}
	}
	publishes := func() []*csipb.NodePublishVolumeRequest {
		return callsOf[*csipb.NodePublishVolumeRequest](env.node)
	}

	setUp()
	clk.Step(RepublishInterval - time.Second)
	setUp()
	if n := len(publishes()); n != 1 {
		t.Fatalf("NodePublishVolume calls before the interval = %d, want 1", n)
	}
	clk.Step(time.Second)
	setUp()
	pubs := publishes()
	if len(pubs) != 2 {
		t.Fatalf("NodePublishVolume calls after the interval = %d, want 2", len(pubs))
	}
	tok := publishedTokens(t, pubs[1])["vault"]
	if tok.Token != "vault-token-2" || !tok.ExpirationTimestamp.Time.Equal(testStart.Add(RepublishInterval+600*time.Second)) {
		t.Errorf("republished token = %+v, want a fresh one", tok)
	}
	if pubs[1].TargetPath != pubs[0].TargetPath || pubs[1].StagingTargetPath != pubs[0].StagingTargetPath {
		t.Errorf("republish to %s from %s, want the first publish's paths", pubs[1].TargetPath, pubs[1].StagingTargetPath)
	}
	if n := len(callsOf[*csipb.NodeStageVolumeRequest](env.node)); n != 1 {
		t.Errorf("NodeStageVolume calls = %d, want 1: republishing does not stage again", n)
	}
	// The interval counts from the last republish.
	clk.Step(RepublishInterval / 2)
	setUp()
	if n := len(publishes()); n != 2 {
		t.Errorf("NodePublishVolume calls half an interval after a republish = %d, want 2", n)
	}

	// A failed republish is reported, leaves the volume mounted and is
	// not retried before the interval is over.
	tokens.fail = errors.New("apiserver down")
	clk.Step(RepublishInterval)
	setUp()
	select {
	case e := <-events.Events:
		if !strings.Contains(e, "FailedMount") || !strings.Contains(e, "apiserver down") {
			t.Errorf("event = %q", e)
		}
	default:
		t.Error("no event for the failed republish")
	}
	if r, err := readRecord(env.m.PodVolumeDir(pod.UID, "data")); err != nil || !r.Published {
		t.Errorf("record after a failed republish = %+v, %v; want it still published", r, err)
	}
	tokens.fail = nil
	setUp()
	if n, c := len(publishes()), tokens.count(); n != 2 || c != 2 {
		t.Errorf("right after a failed republish: %d publishes, %d token requests; want no retry", n, c)
	}
	clk.Step(RepublishInterval)
	setUp()
	if n := len(publishes()); n != 3 {
		t.Errorf("NodePublishVolume calls once the failure's interval passed = %d, want 3", n)
	}
	if n := len(callsOf[*csipb.NodeUnpublishVolumeRequest](env.node)); n != 0 {
		t.Errorf("volume unpublished %d times by republishing", n)
	}

	if err := env.m.TearDownPod(ctx, pod.UID); err != nil {
		t.Fatal(err)
	}
	if n := len(env.m.published); n != 0 {
		t.Errorf("%d publish states left after teardown", n)
	}
}

func TestNoRepublishWithoutRequiresRepublish(t *testing.T) {
	env, clk, tokens := newTokenEnv(t, storagev1.CSIDriverSpec{
		TokenRequests: []storagev1.TokenRequest{{Audience: "vault"}},
	})
	ctx := t.Context()
	pod := testPod("uid-o")
	for range 3 {
		if _, err := env.m.SetUpPersistent(ctx, pod, "data", plainPV("vol-o"), false); err != nil {
			t.Fatal(err)
		}
		clk.Step(2 * RepublishInterval)
	}
	if n, c := len(callsOf[*csipb.NodePublishVolumeRequest](env.node)), tokens.count(); n != 1 || c != 1 {
		t.Errorf("%d publishes and %d token requests, want one each", n, c)
	}
}

// After a kubelet restart the manager knows only the records: the first
// sync looks the driver up and republishes at once if it must.
func TestRepublishAfterRestart(t *testing.T) {
	for _, republish := range []bool{true, false} {
		t.Run(fmt.Sprint("requiresRepublish=", republish), func(t *testing.T) {
			env, _, _ := newTokenEnv(t, storagev1.CSIDriverSpec{RequiresRepublish: ptr.To(republish)})
			ctx := t.Context()
			pod := testPod("uid-s")
			if _, err := env.m.SetUpPersistent(ctx, pod, "data", plainPV("vol-s"), false); err != nil {
				t.Fatal(err)
			}
			env.m.published = map[string]publishState{} // restarted
			for range 2 {
				if _, err := env.m.SetUpPersistent(ctx, pod, "data", plainPV("vol-s"), false); err != nil {
					t.Fatal(err)
				}
			}
			want := 1
			if republish {
				want = 2
			}
			if n := len(callsOf[*csipb.NodePublishVolumeRequest](env.node)); n != want {
				t.Errorf("NodePublishVolume calls = %d, want %d", n, want)
			}
		})
	}
}
