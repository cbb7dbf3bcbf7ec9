// Command pause is the sandbox process of the test cluster's pods
// (internal/kubecluster): it holds a pod's namespaces until it is told to
// stop, as Kubernetes' own pause image does, so that no image has to be
// pulled from a registry.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	<-stop
}
