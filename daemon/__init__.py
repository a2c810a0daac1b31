"""pkcardd: the local gRPC daemon."""
