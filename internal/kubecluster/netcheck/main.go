// Command netcheck checks, from inside a pod of the test cluster
// (internal/kubecluster), what the pod can reach: each -reach address
// must take a TCP connection and each -unreachable one must not, each
// -resolve name must resolve and each -unresolvable one must not. It
// prints one line per check and exits 1 if any expectation failed. With
// -listen it only accepts connections (the far end of a check, run in a
// network namespace the test makes).
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"time"
)

type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	var reach, unreachable, resolve, unresolvable list
	listen := flag.String("listen", "", "only accept TCP connections on this address")
	flag.Var(&reach, "reach", "host:port that must take a connection (repeatable)")
	flag.Var(&unreachable, "unreachable", "host:port that must not (repeatable)")
	flag.Var(&resolve, "resolve", "name that must resolve (repeatable)")
	flag.Var(&unresolvable, "unresolvable", "name that must not (repeatable)")
	flag.Parse()
	if *listen != "" {
		fmt.Fprintln(os.Stderr, "netcheck:", serve(*listen))
		os.Exit(1)
	}
	ok := true
	for _, c := range []struct {
		items []string
		want  bool
		check func(string) error
	}{
		{reach, true, dial}, {unreachable, false, dial}, {resolve, true, lookup}, {unresolvable, false, lookup},
	} {
		for _, item := range c.items {
			err := c.check(item)
			verdict := "as expected"
			if (err == nil) != c.want {
				verdict, ok = "NOT AS EXPECTED", false
			}
			fmt.Printf("%s: err=%v: %s\n", item, err, verdict)
		}
	}
	if !ok {
		os.Exit(1)
	}
}

func dial(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		return err
	}
	return conn.Close()
}

func lookup(name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, err := net.DefaultResolver.LookupHost(ctx, name)
	return err
}

// serve accepts connections on addr until it cannot; it returns why.
func serve(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	for {
		conn, err := ln.Accept()
		if err != nil {
			return err
		}
		conn.Close()
	}
}
