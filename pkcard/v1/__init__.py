"""Generated gRPC code for the pkcard.v1 API (run scripts/gen-protos; do not edit)."""
