// Package reliability holds the failure scenarios of `make reliability`:
// network partitions (in network namespaces the tests create), a slow
// region, registry replica loss, S3 and Consul outages, overload, a soak
// and hostile input, each run against the real binaries on the real rig.
// Every scenario asserts what must hold and records its figures; the
// package prints them as one table. `go test ./reliability` (part of
// `make test`) runs the short versions; `make reliability` the full ones.
// See docs/RELIABILITY.md.
package reliability
