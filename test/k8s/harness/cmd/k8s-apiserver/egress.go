package main

// The API server reaches Services (a webhook's clientConfig.service) at their ClusterIP, which
// no network here routes. As in clusters where the control plane sits outside the pod network
// (konnectivity), the "cluster" egress of the API server goes through an HTTP CONNECT proxy: this
// one, on a Unix socket in the state directory. It dials only what DIR/egress-routes.json maps a
// target to (`{"10.96.0.17:443": "127.0.0.1:40123"}`, written by the tests once they know the
// ClusterIP and the port their injector listens on) and loopback targets as they are; every other
// target gets 502 and no connection, so no traffic leaves loopback.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

func startEgress(d string) (string, error) {
	sock := filepath.Join(d, "egress.sock")
	_ = os.Remove(sock)
	l, err := net.Listen("unix", sock)
	if err != nil {
		return "", err
	}
	routes := filepath.Join(d, "egress-routes.json")
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go serveConnect(c, routes)
		}
	}()
	cfg := filepath.Join(d, "egress-selector.yaml")
	yaml := fmt.Sprintf(`apiVersion: apiserver.k8s.io/v1beta1
kind: EgressSelectorConfiguration
egressSelections:
- name: cluster
  connection:
    proxyProtocol: HTTPConnect
    transport:
      uds:
        udsName: %s
`, sock)
	return cfg, os.WriteFile(cfg, []byte(yaml), 0o600)
}

func route(routes, target string) (string, bool) {
	host, _, err := net.SplitHostPort(target)
	if err != nil {
		return "", false
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return target, true
	}
	b, err := os.ReadFile(routes)
	if err != nil {
		return "", false
	}
	var m map[string]string
	if json.Unmarshal(b, &m) != nil {
		return "", false
	}
	to, ok := m[target]
	if !ok {
		return "", false
	}
	h, _, err := net.SplitHostPort(to)
	if err != nil {
		return "", false
	}
	if ip := net.ParseIP(h); ip == nil || !ip.IsLoopback() {
		return "", false // routes lead to loopback only
	}
	return to, true
}

func serveConnect(c net.Conn, routes string) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	if req.Method != http.MethodConnect {
		fmt.Fprint(c, "HTTP/1.1 405 Method Not Allowed\r\n\r\n")
		return
	}
	to, ok := route(routes, req.Host)
	if !ok {
		fmt.Fprintf(os.Stderr, "k8s-apiserver: egress: no route for %s\n", strings.ReplaceAll(req.Host, "\n", ""))
		fmt.Fprint(c, "HTTP/1.1 502 Bad Gateway\r\n\r\n")
		return
	}
	up, err := net.DialTimeout("tcp", to, 5*time.Second)
	if err != nil {
		fmt.Fprint(c, "HTTP/1.1 502 Bad Gateway\r\n\r\n")
		return
	}
	defer up.Close()
	fmt.Fprint(c, "HTTP/1.1 200 Connection established\r\n\r\n")
	_ = c.SetDeadline(time.Time{})
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, br); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
	<-done
}
