"""Embedding clients of the integrations: the OpenAI-compatible async client and its batching."""
