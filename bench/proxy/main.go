// Command proxy measures how long one full service-proxy sync takes (build
// the rules and apply them with iptables-restore) for 1,000 and 10,000
// Services with two endpoints each, in a scratch network namespace.
//
//	go run ./bench/proxy [-services 1000,10000]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/internal/proxy"
)

func main() {
	counts := flag.String("services", "1000,10000", "service counts to measure")
	flag.Parse()
	for _, c := range strings.Split(*counts, ",") {
		n, err := strconv.Atoi(c)
		if err != nil {
			fmt.Fprintln(os.Stderr, "proxy:", err)
			os.Exit(2)
		}
		if err := run(n); err != nil {
			fmt.Fprintln(os.Stderr, "proxy:", err)
			os.Exit(1)
		}
	}
}

func run(n int) error {
	ns := fmt.Sprintf("skiff-bench-proxy-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		return fmt.Errorf("ip netns add (needs root): %v: %s", err, out)
	}
	defer exec.Command("ip", "netns", "delete", ns).Run()

	objs := make([]runtime.Object, 0, 2*n)
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("svc-%d", i)
		ip := fmt.Sprintf("10.%d.%d.%d", 96+i/65536, (i/256)%256, i%256)
		objs = append(objs,
			&v1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "bench"}, Spec: v1.ServiceSpec{
				ClusterIP: ip, ClusterIPs: []string{ip}, Ports: []v1.ServicePort{{Name: "http", Port: 80, Protocol: v1.ProtocolTCP}}}},
			&discoveryv1.EndpointSlice{
				ObjectMeta:  metav1.ObjectMeta{Name: name + "-x", Namespace: "bench", Labels: map[string]string{discoveryv1.LabelServiceName: name}},
				AddressType: discoveryv1.AddressTypeIPv4,
				Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To(int32(8080)), Protocol: ptr.To(v1.ProtocolTCP)}},
				Endpoints: []discoveryv1.Endpoint{
					{Addresses: []string{fmt.Sprintf("10.42.%d.%d", (2*i/250)%250, 2*i%250+1)}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}},
					{Addresses: []string{fmt.Sprintf("10.43.%d.%d", (2*i/250)%250, 2*i%250+2)}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}},
				},
			})
	}
	client := fake.NewSimpleClientset(objs...)
	p, err := proxy.New(proxy.Config{Client: client, NodeName: "bench", ClusterCIDR: "10.42.0.0/15",
		Runner: proxy.ExecRunner{Prefix: []string{"ip", "netns", "exec", ns}}})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); p.StopInformers() }()
	if err := p.StartInformers(ctx); err != nil {
		return err
	}
	var times []time.Duration
	for i := 0; i < 3; i++ {
		start := time.Now()
		if err := p.Sync(ctx); err != nil {
			return err
		}
		times = append(times, time.Since(start))
	}
	fmt.Printf("proxy sync, %5d services x 2 endpoints: first %s, then %s, %s (build + iptables-restore)\n",
		n, times[0].Round(time.Millisecond), times[1].Round(time.Millisecond), times[2].Round(time.Millisecond))
	return nil
}
