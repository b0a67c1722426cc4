"""Fortress: a Kubernetes operator for a platform's production machinery."""

__version__ = "0.1.0"
