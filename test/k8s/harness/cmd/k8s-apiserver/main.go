// k8s-apiserver runs a Kubernetes control plane on loopback for test/k8s: etcd embedded in this
// process, kube-apiserver (the upstream command, in this process) and, with
// --controller-manager, kube-controller-manager as a child process.
//
//	k8s-apiserver --dir DIR [--controller-manager PATH]
//
// It writes into DIR, before starting anything: a CA (ca.crt/ca.key), the API server's serving
// certificate for 127.0.0.1 and localhost, a service-account signing key pair (sa.key/sa.pub),
// an admin client certificate (O=system:masters) with admin.kubeconfig, and the controller
// manager's kubeconfig. When /readyz answers ok it writes DIR/ready.json
// ({"server": URL, "kubeconfig": PATH, "caFile": PATH, "issuer": ISSUER, "pid": N}).
// SIGTERM or SIGINT stops everything; the controller manager dies with this process
// (PR_SET_PDEATHSIG), so no child outlives a killed harness.
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
	_ "time/tzdata"

	"go.etcd.io/etcd/server/v3/embed"
	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

// Issuer is the service-account token issuer the API server signs with.
const Issuer = "https://kubernetes.default.svc.cluster.local"

func main() {
	dir := flag.String("dir", "", "state directory (certificates, kubeconfigs, etcd data)")
	kcm := flag.String("controller-manager", "", "path of k8s-controller-manager to start once the API server is ready")
	verbosity := flag.Int("v", 0, "log verbosity of kube-apiserver")
	flag.Parse()
	if *dir == "" {
		fatal("--dir is required")
	}
	if err := os.MkdirAll(*dir, 0o700); err != nil {
		fatal("%v", err)
	}
	d, err := filepath.Abs(*dir)
	if err != nil {
		fatal("%v", err)
	}

	ports, err := freePorts(3)
	if err != nil {
		fatal("free ports: %v", err)
	}
	etcdClient, etcdPeer, apiPort := ports[0], ports[1], ports[2]
	server := "https://127.0.0.1:" + strconv.Itoa(apiPort)

	p, err := writePKI(d, server)
	if err != nil {
		fatal("pki: %v", err)
	}

	etcd, err := startEtcd(filepath.Join(d, "etcd"), etcdClient, etcdPeer)
	if err != nil {
		fatal("etcd: %v", err)
	}
	defer etcd.Close()

	egressConfig, err := startEgress(d)
	if err != nil {
		fatal("egress: %v", err)
	}

	args := []string{
		"--etcd-servers=http://127.0.0.1:" + strconv.Itoa(etcdClient),
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(apiPort),
		"--cert-dir=" + filepath.Join(d, "cert-dir"),
		"--tls-cert-file=" + p.serverCert,
		"--tls-private-key-file=" + p.serverKey,
		"--client-ca-file=" + p.caCert,
		"--service-account-issuer=" + Issuer,
		"--service-account-key-file=" + p.saPub,
		"--service-account-signing-key-file=" + p.saKey,
		"--api-audiences=" + Issuer,
		"--service-cluster-ip-range=10.96.0.0/16",
		"--authorization-mode=Node,RBAC",
		"--allow-privileged=true",
		"--profiling=false",
		"--enable-priority-and-fairness=false",
		"--endpoint-reconciler-type=none",
		"--egress-selector-config-file=" + egressConfig,
		"--v=" + strconv.Itoa(*verbosity),
	}
	cmd := app.NewAPIServerCommand()
	cmd.SetArgs(args)

	go func() {
		if err := waitReady(server, p); err != nil {
			fatal("api server not ready: %v", err)
		}
		if *kcm != "" {
			if err := startControllerManager(*kcm, d, p); err != nil {
				fatal("controller manager: %v", err)
			}
		}
		ready := map[string]any{
			"server":     server,
			"kubeconfig": p.adminKubeconfig,
			"caFile":     p.caCert,
			"caKeyFile":  p.caKey,
			"issuer":     Issuer,
			"pid":        os.Getpid(),
		}
		b, _ := json.Marshal(ready)
		tmp := filepath.Join(d, "ready.json.tmp")
		if err := os.WriteFile(tmp, b, 0o600); err != nil {
			fatal("%v", err)
		}
		if err := os.Rename(tmp, filepath.Join(d, "ready.json")); err != nil {
			fatal("%v", err)
		}
		fmt.Fprintf(os.Stderr, "k8s-apiserver: ready at %s\n", server)
	}()

	code := cli.Run(cmd)
	etcd.Close()
	os.Exit(code)
}

func fatal(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "k8s-apiserver: "+format+"\n", a...)
	os.Exit(1)
}

// freePorts asks the kernel for n free loopback ports, holding all of them open at once so they
// are distinct.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	var out []int
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	return out, nil
}

func startEtcd(dataDir string, clientPort, peerPort int) (*embed.Etcd, error) {
	cfg := embed.NewConfig()
	cfg.Name = "harness"
	cfg.Dir = dataDir
	cfg.LogLevel = "error"
	cu, _ := url.Parse("http://127.0.0.1:" + strconv.Itoa(clientPort))
	pu, _ := url.Parse("http://127.0.0.1:" + strconv.Itoa(peerPort))
	cfg.ListenClientUrls = []url.URL{*cu}
	cfg.AdvertiseClientUrls = []url.URL{*cu}
	cfg.ListenPeerUrls = []url.URL{*pu}
	cfg.AdvertisePeerUrls = []url.URL{*pu}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.UnsafeNoFsync = true // test data, thrown away with the directory
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, err
	}
	select {
	case <-e.Server.ReadyNotify():
		return e, nil
	case <-time.After(60 * time.Second):
		e.Close()
		return nil, fmt.Errorf("not ready after 60s")
	}
}

func waitReady(server string, p *pki) error {
	pair, err := tls.LoadX509KeyPair(p.adminCert, p.adminKey)
	if err != nil {
		return err
	}
	caPEM, err := os.ReadFile(p.caCert)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	c := &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}}},
	}
	deadline := time.Now().Add(180 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := c.Get(server + "/readyz")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	return fmt.Errorf("no 200 from %s/readyz in 180s", server)
}

func startControllerManager(path, d string, p *pki) error {
	logf, err := os.Create(filepath.Join(d, "controller-manager.log"))
	if err != nil {
		return err
	}
	cmd := exec.Command(path,
		"--kubeconfig="+p.kcmKubeconfig,
		"--authentication-kubeconfig="+p.kcmKubeconfig,
		"--authorization-kubeconfig="+p.kcmKubeconfig,
		"--bind-address=127.0.0.1",
		"--secure-port=0",
		"--leader-elect=false",
		"--use-service-account-credentials=true", // each controller as its own ServiceAccount, as in a cluster
		"--service-account-private-key-file="+p.saKey,
		"--root-ca-file="+p.caCert,
		"--cluster-signing-cert-file="+p.caCert,
		"--cluster-signing-key-file="+p.caKey,
		// No kubelet and no cloud: only the controllers that turn workloads into pods, give
		// namespaces their default ServiceAccount and root CA, and clean up.
		"--controllers=deployment-controller,replicaset-controller,statefulset-controller,job-controller,cronjob-controller,daemonset-controller,replicationcontroller-controller,serviceaccount-controller,serviceaccount-token-controller,root-ca-certificate-publisher-controller,namespace-controller,garbage-collector-controller",
		"--concurrent-deployment-syncs=2",
		"--concurrent-replicaset-syncs=2",
		"--v=1",
	)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	go func() {
		err := cmd.Wait()
		fmt.Fprintf(os.Stderr, "k8s-apiserver: controller manager exited: %v (log: %s)\n", err, logf.Name())
	}()
	return nil
}

type pki struct {
	caCert, caKey, serverCert, serverKey, saKey, saPub  string
	adminCert, adminKey, adminKubeconfig, kcmKubeconfig string
}

func writePKI(d, server string) (*pki, error) {
	p := &pki{
		caCert: filepath.Join(d, "ca.crt"), caKey: filepath.Join(d, "ca.key"),
		serverCert: filepath.Join(d, "apiserver.crt"), serverKey: filepath.Join(d, "apiserver.key"),
		saKey: filepath.Join(d, "sa.key"), saPub: filepath.Join(d, "sa.pub"),
		adminCert: filepath.Join(d, "admin.crt"), adminKey: filepath.Join(d, "admin.key"),
		adminKubeconfig: filepath.Join(d, "admin.kubeconfig"), kcmKubeconfig: filepath.Join(d, "controller-manager.kubeconfig"),
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "remora-test-k8s-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(48 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	ca, _ := x509.ParseCertificate(caDER)
	if err := writeCert(p.caCert, caDER); err != nil {
		return nil, err
	}
	if err := writeKey(p.caKey, caKey); err != nil {
		return nil, err
	}
	serial := int64(2)
	leaf := func(certPath, keyPath string, subj pkix.Name, server bool) error {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		t := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      subj,
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.Add(47 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
		}
		serial++
		if server {
			t.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
			t.IPAddresses = []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("10.96.0.1")}
			t.DNSNames = []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}
		} else {
			t.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
		}
		der, err := x509.CreateCertificate(rand.Reader, t, ca, &k.PublicKey, caKey)
		if err != nil {
			return err
		}
		if err := writeCert(certPath, der); err != nil {
			return err
		}
		return writeKey(keyPath, k)
	}
	if err := leaf(p.serverCert, p.serverKey, pkix.Name{CommonName: "kube-apiserver"}, true); err != nil {
		return nil, err
	}
	if err := leaf(p.adminCert, p.adminKey, pkix.Name{CommonName: "remora-test-admin", Organization: []string{"system:masters"}}, false); err != nil {
		return nil, err
	}
	kcmCert, kcmKey := filepath.Join(d, "controller-manager.crt"), filepath.Join(d, "controller-manager.key")
	if err := leaf(kcmCert, kcmKey, pkix.Name{CommonName: "system:kube-controller-manager"}, false); err != nil {
		return nil, err
	}
	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	if err := writeKey(p.saKey, saKey); err != nil {
		return nil, err
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(p.saPub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o600); err != nil {
		return nil, err
	}
	if err := writeKubeconfig(p.adminKubeconfig, server, p.caCert, p.adminCert, p.adminKey, "remora-test-admin"); err != nil {
		return nil, err
	}
	if err := writeKubeconfig(p.kcmKubeconfig, server, p.caCert, kcmCert, kcmKey, "system:kube-controller-manager"); err != nil {
		return nil, err
	}
	return p, nil
}

func writeCert(path string, der []byte) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
}

func writeKey(path string, k *ecdsa.PrivateKey) error {
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return err
	}
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600)
}

func writeKubeconfig(path, server, ca, cert, key, user string) error {
	s := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: harness
  cluster:
    server: %s
    certificate-authority: %s
users:
- name: %s
  user:
    client-certificate: %s
    client-key: %s
contexts:
- name: harness
  context:
    cluster: harness
    user: %s
current-context: harness
`, server, ca, user, cert, key, user)
	return os.WriteFile(path, []byte(s), 0o600)
}
