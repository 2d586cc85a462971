"""The framework-free, backend-free core: ops and their drivers, filters, validation, MMR and
scoring, batching, coalescing, event loops, deadlines, retries and the exception hierarchy."""
