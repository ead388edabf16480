package kubelet

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func TestDNSConfigPerPolicy(t *testing.T) {
	host := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(host, []byte("# host\nnameserver 192.0.2.53\nsearch corp.example\noptions timeout:2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	old := hostResolvConf
	hostResolvConf = host
	t.Cleanup(func() { hostResolvConf = old })
	k := testKubelet(t)
	clusterSearch := []string{"ns.svc.cluster.local", "svc.cluster.local", "cluster.local", "corp.example"}

	for _, tc := range []struct {
		name                      string
		spec                      v1.PodSpec
		servers, searches, option []string
	}{
		{"ClusterFirst", v1.PodSpec{DNSPolicy: v1.DNSClusterFirst}, []string{"10.96.0.10"}, clusterSearch, []string{"ndots:5"}},
		{"empty policy is ClusterFirst", v1.PodSpec{}, []string{"10.96.0.10"}, clusterSearch, []string{"ndots:5"}},
		{"ClusterFirst on the host network is Default", v1.PodSpec{DNSPolicy: v1.DNSClusterFirst, HostNetwork: true},
			[]string{"192.0.2.53"}, []string{"corp.example"}, []string{"timeout:2"}},
		{"ClusterFirstWithHostNet", v1.PodSpec{DNSPolicy: v1.DNSClusterFirstWithHostNet, HostNetwork: true},
			[]string{"10.96.0.10"}, clusterSearch, []string{"ndots:5"}},
		{"Default", v1.PodSpec{DNSPolicy: v1.DNSDefault}, []string{"192.0.2.53"}, []string{"corp.example"}, []string{"timeout:2"}},
		{"None with dnsConfig", v1.PodSpec{DNSPolicy: v1.DNSNone, DNSConfig: &v1.PodDNSConfig{
			Nameservers: []string{"1.1.1.1"}, Searches: []string{"a.example"},
			Options: []v1.PodDNSConfigOption{{Name: "ndots", Value: ptr.To("2")}, {Name: "edns0"}}}},
			[]string{"1.1.1.1"}, []string{"a.example"}, []string{"ndots:2", "edns0"}},
		{"dnsConfig options override by name", v1.PodSpec{DNSConfig: &v1.PodDNSConfig{
			Options: []v1.PodDNSConfigOption{{Name: "ndots", Value: ptr.To("1")}}}},
			[]string{"10.96.0.10"}, clusterSearch, []string{"ndots:1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns"}, Spec: tc.spec}
			got, err := k.dnsConfig(pod)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got.Servers, tc.servers) || !reflect.DeepEqual(got.Searches, tc.searches) || !reflect.DeepEqual(got.Options, tc.option) {
				t.Errorf("got servers %v searches %v options %v\nwant servers %v searches %v options %v",
					got.Servers, got.Searches, got.Options, tc.servers, tc.searches, tc.option)
			}
		})
	}
}
