"""The services' runtime: settings, errors, logs, the gRPC host, NATS, PostgreSQL, Redis, GPU leases."""
