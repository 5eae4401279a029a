"""Shared test helpers: apps, servers on free loopback ports, server processes, the Go and gRPC fixtures."""
