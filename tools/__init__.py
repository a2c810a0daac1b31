"""Command-line tools: pkpin, pkcard-sim, pkcard-trace, pkcard-demo."""
