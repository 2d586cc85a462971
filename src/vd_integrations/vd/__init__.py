"""The generic backend: every operation over any ``vd`` backend (``memory`` by default)."""
