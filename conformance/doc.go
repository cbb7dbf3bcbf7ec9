// Package conformance checks the edge's public protocols with clients
// written from the specifications, not from the server's code: the Open
// Inference Protocol (KServe V2) REST API and Triton's binary tensor data
// extension, called the way KServe's and Triton's HTTP clients call them,
// against the real edge binary and through the real geo router; and its
// gRPC service, called by a Python client whose stubs Debian's
// grpc_tools generate from the protocol's proto (grpc_client.py).
package conformance
