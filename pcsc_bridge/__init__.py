"""pcsc_bridge: the only package that imports pyscard."""
