"""The service: the query pipeline, the assembled engine and its front doors (CLI, HTTP)."""

__distribution__ = "groundwork"  # service.own_packages checks that this package is ours
