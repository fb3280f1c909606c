// k8s-controller-manager is kube-controller-manager from k8s.io/kubernetes, built for the
// test harness (k8s-apiserver starts it). It is the upstream command unchanged.
package main

import (
	"os"
	_ "time/tzdata" // CronJob time zones

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-controller-manager/app"
)

func main() {
	os.Exit(cli.Run(app.NewControllerManagerCommand()))
}
