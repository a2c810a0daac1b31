"""Generated code of the pkcard reference backend API (pkcard.backend.v1)."""
