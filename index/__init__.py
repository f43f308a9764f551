"""The index layer: the database (source of truth) and the indexes derived from it."""

__distribution__ = "groundwork"  # service.own_packages checks that this package is ours
