"""Generated gRPC code for pkcard.backend.v1 (regenerate with protoc; do not edit)."""
