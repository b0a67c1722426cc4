// Command etcd is a minimal etcd server binary used by the integration
// test control plane (see tests/support/controlplane.py).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
