"""The HTTP API: assembly (``app``), route families (``routes_*``), access (``guard``), errors."""
