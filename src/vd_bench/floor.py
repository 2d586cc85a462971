"""The physical floor of a workload: what N operations cost at the very least.

However a store merges, splits or pipelines its calls, N operations need the embedding
service and the Milvus server to do a minimum of work: for search N, one embedding round
trip for the N queries and one ``nq=N`` search; for MMR N, the same round trip and the
cheaper of one ``nq=N`` search returning the candidates' vectors and a search for their
keys followed by one query for the distinct rows (how merged MMR searches go); for add
N, one round trip and one insert of N rows; for delete N, one delete (no embedding). Bulk
N (one call adding N documents) has add N's floor: the round trips its N texts need at
the API's limit of :data:`MAX_INPUTS` inputs a request (one for N up to 2,048; any
workload's texts beyond that take a request per :data:`MAX_INPUTS` more, sent in turn),
then one insert of N rows. The floor is that work measured raw, in the same run and on
the same server as the store, right after each measurement (interleaved, so drift
affects both alike):

    floor = embedding round trips (one request per 2,048 of the N texts, timed)
          + the server's time for one merged request (timed with ``AsyncMilvusClient``)

Each part is timed twice and the faster kept (a request to a collection left idle can pay
for waking it up). The embedding request goes straight to the OpenAI-compatible endpoint
with ``httpx`` (``encoding_format=base64``, decoded with numpy); the server request runs
on a collection of this module's own (``vd_bench_floor_<subject>``: a VARCHAR primary key,
the vector, the text and the documents' metadata as dynamic fields, ``AUTOINDEX``/``L2``
like our stores' default) holding the workload's population, so the stores' collections
are left alone. A measurement divided by its floor says how far a store is from what the
hardware allows; the benchmark's table prints both. The floor of a write is measured on an
existing collection: a store's first write to a fresh one also creates it. Its pymilvus
clients use our stores' channel options (:meth:`ConnectionConfig.client_kwargs`): with
pymilvus' default idle pings, the Milvus Lite server drops the channel ("too many pings")
and the next timed request fails.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vd_bench.corpus import items, query
from vd_integrations.milvus.config import ConnectionConfig

__all__ = [
    "FLOOR_COLLECTION",
    "MAX_INPUTS",
    "ROUND_TRIPS",
    "FloorMeter",
    "FloorSample",
    "round_trips",
]

#: Embedding round trips N operations of each workload need at the least, for N up to
#: :data:`MAX_INPUTS` (:func:`round_trips` gives any N's).
ROUND_TRIPS = {"add": 1, "bulk": 1, "search": 1, "upsert": 1, "mmr": 1, "delete": 0}
#: Inputs one embedding request may carry (OpenAI's limit).
MAX_INPUTS = 2048
FLOOR_COLLECTION = "vd_bench_floor"
#: Results per search and MMR candidates (as in :mod:`vd_bench.subjects`).
K, FETCH_K = 3, 20
OUTPUT_FIELDS = ["text", "id", "score", "category"]
#: A server request faster than this (seconds) is timed twice, the faster kept.
REPEAT_BELOW = 2.0


@dataclass(frozen=True)
class FloorSample:
    """One raw measurement of a workload's floor, in seconds."""

    workload: str
    n: int
    round_trips: int
    embedding_s: float
    server_s: float

    @property
    def seconds(self) -> float:
        return self.embedding_s + self.server_s


def round_trips(workload: str, n: int) -> int:
    """Embedding requests ``n`` operations of ``workload`` need: one per
    :data:`MAX_INPUTS` texts, none for a workload that embeds nothing."""
    return -(-n // MAX_INPUTS) if ROUND_TRIPS[workload] else 0


def _texts(workload: str, n: int, start: int) -> list[str]:
    if workload in ("search", "mmr"):
        return [query(i) for i in range(n)]
    if workload == "upsert":
        return [item.text for item in items(n, version=1)]
    return [item.text for item in items(n, start=start)]


class FloorMeter:
    """Measures :class:`FloorSample` s on one Milvus ``uri`` and one embeddings endpoint.

    :meth:`prepare` (sync, untimed) creates and fills the floor collection; :meth:`measure`
    (async) times one workload's floor on the running loop, whose clients it creates on
    first use; :meth:`aclose` closes them on that loop and :meth:`close` drops the
    collection.
    """

    def __init__(
        self,
        uri: str,
        *,
        embeddings_base_url: str | None,
        embeddings_api_key: str | None = None,
        model: str = "text-embedding-3-small",
        population: int = 100,
        collection: str = FLOOR_COLLECTION,
    ) -> None:
        from vd_integrations.embeddings.openai_client import OFFLINE_API_KEY

        self.uri = uri
        base = embeddings_base_url or os.environ.get("OPENAI_BASE_URL")
        self.embeddings_url = (base or "https://api.openai.com/v1").rstrip("/") + "/embeddings"
        key = embeddings_api_key or os.environ.get("OPENAI_API_KEY") or OFFLINE_API_KEY
        self._headers = {"authorization": f"Bearer {key}"}
        self.model = model
        self.population = population
        self.collection = collection
        self.dim: int | None = None
        self._rows = 0  # rows doc_0 .. doc_{rows-1} in the collection
        self._round = 0  # makes every round's new primary keys unique
        self._client: Any = None
        self._http: Any = None

    # ----- setup (sync, untimed) -------------------------------------------------------------

    def _payload(self, texts: Sequence[str]) -> dict[str, Any]:
        return {"model": self.model, "input": list(texts), "encoding_format": "base64"}

    @staticmethod
    def _vectors(body: dict[str, Any]) -> np.ndarray:
        """The response's vectors as one ``(n, dim)`` float32 array (what pymilvus sends
        without converting each to a list first)."""
        rows = sorted(body["data"], key=lambda row: row["index"])
        return np.stack(
            [np.frombuffer(base64.b64decode(row["embedding"]), dtype="<f4") for row in rows]
        )

    def _random_vectors(self, n: int, seed: int) -> np.ndarray:
        assert self.dim is not None
        matrix = np.random.default_rng(seed).standard_normal((n, self.dim), dtype=np.float32)
        matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
        return matrix

    def _rows_for(
        self, pks: Sequence[str], texts: Sequence[str], vectors: np.ndarray
    ) -> list[dict[str, Any]]:
        return [
            {"pk": pk, "vector": vector, "text": text, "id": pk, "score": 0.5, "category": "c"}
            for pk, text, vector in zip(pks, texts, vectors, strict=True)
        ]

    def _client_kwargs(self) -> dict[str, Any]:
        """pymilvus client arguments as our stores pass them (no idle pings: see above)."""
        return ConnectionConfig(uri=self.uri).client_kwargs()

    def prepare(self) -> FloorMeter:
        """Ask the embeddings endpoint for the vector size (one request), then create the
        floor collection with ``population`` documents (random unit vectors)."""
        import httpx
        from pymilvus import DataType, MilvusClient

        with httpx.Client(timeout=120, trust_env=False) as http:
            response = http.post(
                self.embeddings_url, json=self._payload(["dimension probe"]), headers=self._headers
            )
            response.raise_for_status()
            self.dim = len(self._vectors(response.json())[0])
        client = MilvusClient(**self._client_kwargs())
        try:
            if client.has_collection(self.collection):
                client.drop_collection(self.collection)
            schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=True)
            schema.add_field("pk", DataType.VARCHAR, is_primary=True, max_length=128)
            schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self.dim)
            schema.add_field("text", DataType.VARCHAR, max_length=8192)
            index = client.prepare_index_params()
            index.add_index("vector", index_type="AUTOINDEX", metric_type="L2")
            client.create_collection(self.collection, schema=schema, index_params=index)
            self._grow(client, self.population)
            client.load_collection(self.collection)
        finally:
            client.close()
        return self

    def _grow(self, client: Any, rows: int) -> None:
        """Add documents ``doc_{self._rows}`` .. ``doc_{rows - 1}`` (untimed)."""
        if rows <= self._rows:
            return
        batch = items(rows - self._rows, start=self._rows)
        pks, texts = [item.doc_id for item in batch], [item.text for item in batch]
        vectors = self._random_vectors(len(batch), seed=self._rows)
        for start in range(0, len(batch), 1000):
            part = slice(start, start + 1000)
            client.insert(self.collection, self._rows_for(pks[part], texts[part], vectors[part]))
        self._rows = rows

    # ----- measuring (async) -----------------------------------------------------------------

    async def _clients(self) -> tuple[Any, Any]:
        if self._client is None:
            import httpx
            from pymilvus import AsyncMilvusClient

            self._http = httpx.AsyncClient(timeout=120, trust_env=False)
            self._client = AsyncMilvusClient(**self._client_kwargs())
            # connect and warm up, untimed: one embedding request, one search
            vectors = await self._embed(["warm up"])
            await self._client.load_collection(self.collection)
            await self._client.search(
                self.collection, data=vectors, limit=K, anns_field="vector", output_fields=["pk"]
            )
        return self._client, self._http

    async def _embed(self, texts: Sequence[str]) -> np.ndarray:
        """The texts' vectors: one request per :data:`MAX_INPUTS` of them, in turn."""
        parts = []
        for start in range(0, len(texts), MAX_INPUTS):
            response = await self._http.post(
                self.embeddings_url,
                json=self._payload(texts[start : start + MAX_INPUTS]),
                headers=self._headers,
            )
            response.raise_for_status()
            parts.append(self._vectors(response.json()))
        return np.concatenate(parts)

    async def measure(self, workload: str, n: int) -> FloorSample:
        """Time ``workload``'s floor for ``n`` operations: the embedding requests its texts
        need (:func:`round_trips`; none for delete), then the one merged server request.

        Each part is timed twice and the faster kept (the first request to a collection
        left idle can pay for waking it up, which no store pays on every call), except a
        server request of more than :data:`REPEAT_BELOW` seconds, timed once."""
        if workload not in ROUND_TRIPS:
            raise ValueError(f"no floor for workload {workload!r}")
        await self._clients()
        texts = _texts(workload, n, start=self._rows)
        embedding_s = 0.0
        vectors = np.empty((0, self.dim or 1), dtype=np.float32)
        trips = round_trips(workload, n)
        if trips:
            times = []
            for _ in range(2):
                began = time.perf_counter()
                vectors = await self._embed(texts)
                times.append(time.perf_counter() - began)
            embedding_s = min(times)
        server_s = await self._server(workload, n, texts, vectors)
        if server_s < REPEAT_BELOW:
            server_s = min(server_s, await self._server(workload, n, texts, vectors))
        return FloorSample(workload, n, trips, embedding_s, server_s)

    async def _server(
        self, workload: str, n: int, texts: Sequence[str], vectors: np.ndarray
    ) -> float:
        """Seconds of one merged server request for ``n`` operations of ``workload``
        (whatever it needs before or after, untimed)."""
        client, name = self._client, self.collection
        self._round += 1
        tag = f"floor{self._round}"
        if workload == "search":
            began = time.perf_counter()
            await client.search(
                name, data=list(vectors), limit=K, anns_field="vector", output_fields=OUTPUT_FIELDS
            )
            return time.perf_counter() - began
        if workload == "mmr":
            return min(
                await self._search_with_vectors(vectors), await self._search_then_fetch(vectors)
            )
        if workload in ("add", "bulk"):  # bulk N: add N's one insert of N rows
            pks = [f"{tag}_{k}" for k in range(n)]
            rows = self._rows_for(pks, texts, vectors)
            began = time.perf_counter()
            await client.insert(name, rows)
            seconds = time.perf_counter() - began
            await client.delete(name, filter=f"pk in {json.dumps(pks)}")  # keep the size
            return seconds
        if workload == "upsert":
            pks = [f"doc_{k}" for k in range(n)]
            rows = self._rows_for(pks, texts, vectors)
            began = time.perf_counter()
            await client.upsert(name, rows)
            self._rows = max(self._rows, n)
            return time.perf_counter() - began
        # delete: N documents by their metadata id, as the stores' merged delete does
        pks = [f"{tag}_{k}" for k in range(n)]
        await client.insert(name, self._rows_for(pks, pks, self._random_vectors(n, n)))
        began = time.perf_counter()
        await client.delete(name, filter=f"id in {json.dumps(pks)}")
        return time.perf_counter() - began

    async def _search_with_vectors(self, vectors: np.ndarray) -> float:
        """Seconds of one search returning the MMR candidates with their vectors."""
        began = time.perf_counter()
        await self._client.search(
            self.collection,
            data=list(vectors),
            limit=FETCH_K,
            anns_field="vector",
            output_fields=[*OUTPUT_FIELDS, "vector"],
        )
        return time.perf_counter() - began

    async def _search_then_fetch(self, vectors: np.ndarray) -> float:
        """Seconds of a search for the candidates' keys, then one query for the distinct
        rows with their vectors (how merged MMR searches go: ``search_fetch``)."""
        began = time.perf_counter()
        found = await self._client.search(
            self.collection,
            data=list(vectors),
            limit=FETCH_K,
            anns_field="vector",
            output_fields=["pk"],
        )
        keys = list(
            dict.fromkeys(hit["pk"] if "pk" in hit else hit["id"] for hits in found for hit in hits)
        )
        if keys:
            await self._client.query(
                self.collection,
                filter=f"pk in {json.dumps(keys)}",
                output_fields=[*OUTPUT_FIELDS, "vector"],
                limit=len(keys),
            )
        return time.perf_counter() - began

    async def aclose(self) -> None:
        """Drop the floor collection and close the clients, on the loop :meth:`measure` ran
        on (one that never measured connects here to drop it)."""
        from pymilvus import AsyncMilvusClient

        client, http, self._client, self._http = self._client, self._http, None, None
        if http is not None:
            await http.aclose()
        client = client or AsyncMilvusClient(**self._client_kwargs())
        try:
            if await client.has_collection(self.collection):
                await client.drop_collection(self.collection)
        finally:
            with contextlib.suppress(Exception):
                await client.close()
