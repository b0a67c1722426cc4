"""The demo: ``runner`` runs it; every other module here is one capability's step.

A step module has ``async demo(ctx)`` (raises on failure) and optionally ``environment(ctx)``, an
async context manager the runner enters before applying the examples. Steps run in the order of
``fortress.discovery.PREFERRED_ORDER``; ``fortress demo --only NAME`` names them by module.
"""
