"""Test and benchmark utilities (the offline embeddings server, the Milvus Lite server
helper), importable by tests, the benchmark and the notebooks; not part of the store API."""
