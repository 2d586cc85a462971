"""Filter injection: hostile metadata values, filter values and keys never change a filter.

Property-based (hypothesis) round trips against Milvus Lite, with ``vd.matches_filter`` as
the oracle, in the style of ``test_filters.py`` (whose collection helpers are reused): the
rows Milvus selects with the translated expression must be exactly the rows whose metadata
the reference implementation accepts. Values and keys are arbitrary Unicode (everything but
lone surrogates, NUL and other control characters included) mixed with quotes, backslashes,
expression keywords (``and or not in like exists true json_contains ...``) and fragments
such as ``" or 1==1 or "``. Four paths are covered:

* the core translator (``vd_integrations.core.filters.translate_filter``) on a fixed corpus,
  plus a deterministic sweep of every injection fragment under every operator;
* the core translator on rows that hypothesis generates too (values *and* keys);
* LlamaIndex ``MetadataFilters`` (``llama_index_vd.filters``) through
  ``llama_index_vd.MilvusVectorStore.get_nodes``, oracle ``vd.matches_filter`` on
  ``to_vd_filter(filters)``;
* LangChain ``filter=`` through ``langchain_vd.Milvus`` searches, sync and async (the async
  batches run concurrently, so coalesced searches with different filters are covered too).

Every checked filter is one case in :data:`CASES`; ``test_case_count`` (last) asserts the
total (at least 2,000) and prints it. For speed (Milvus Lite spends ~0.15 ms per returned
row), the core paths check a filter with two ``count(*)`` queries, run concurrently:
``count(expr) == |expected|`` and ``count(pk in expected and expr) == |expected|`` together
mean the filter selects exactly the expected rows; on a mismatch the rows themselves are
queried for the failure message. The store paths compare the documents they return.

What is kept out of the generated data, because the translator documents it as a known
divergence rather than a bug: JSON ``null`` values, mixed value types under one key, keys
named like the collection's own fields (``pk``/``text``/``vector``; for LlamaIndex ``id``,
``doc_id``, ...), keys starting with ``$`` (operators in the vd language), and list-valued
metadata under keys that must be written ``$meta["..."]`` (no overlap matching there).
Lone surrogates cannot be stored at all: ``test_unstorable_characters_are_rejected``
pins that they are refused with a clear error at write time and in filters.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import vd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from llama_index.core.schema import TextNode
from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
)
from pymilvus import MilvusClient

from langchain_vd import Milvus
from llama_index_vd import MilvusVectorStore
from llama_index_vd.filters import to_milvus_expr, to_vd_filter
from tests.raw_clients import raw_client
from tests.test_filters import create_collection, insert, query_ids
from vd_integrations.core.errors import InvalidInputError
from vd_integrations.core.filters import and_exprs, ids_expr, translate_filter

#: Checked filters per path; ``test_case_count`` reports and asserts the total.
CASES: Counter[str] = Counter()
MIN_CASES = 2_000
GENERATORS = {"core", "core sweep", "core generated rows", "llama_index", "langchain"}
RAN: set[str] = set()

# ------------------------------------------------------------------------------------------------
# Hostile strings
# ------------------------------------------------------------------------------------------------

KEYWORDS = [
    "and", "or", "not", "in", "nin", "like", "is", "null", "exists", "true", "false",
    "AND", "Or", "NOT", "TRUE", "None", "NULL", "json_contains", "json_contains_any",
    "json_contains_all", "array_contains", "array_length", "text_match", "$meta",
]  # fmt: skip
FRAGMENTS = [
    '" or 1==1 or "', "' or 1==1 or '", '") or (true', '\\" or true or \\"',
    '"] or true or x["', 'x == "a"', "1 == 1", "a\\", "\\\\", '\\"', '\\\\"', "%", "_",
    "%_%", "$meta", '$meta["s"]', "(", ")", "[", "]", "||", "&&", "!", "!=", "==",
    "not exists s", 'json_contains(tags, "a")', "/* */", "--", ";", "\x00",
    '\x00" or true', '\n" or true or "', "\r\n", "\t", "\\n", "\\u0022", "\\x22",
    "é", "😀", "\u2028", "\ufeff", "\uffff", "'", '"', "\\", "", " ",
]  # fmt: skip
#: Arbitrary Unicode except lone surrogates (which no store can keep; see the last test).
any_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)


def random_char(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.4:
        return chr(rng.randint(32, 126))
    if roll < 0.5:
        return chr(rng.randint(0, 31))
    if roll < 0.6:
        return chr(rng.randint(0x7F, 0xFF))
    if roll < 0.9:
        code = rng.randint(0x100, 0xFFFF)
        return chr(code) if not 0xD800 <= code <= 0xDFFF else "\ufffd"
    return chr(rng.randint(0x10000, 0x10FFFF))


def random_string(rng: random.Random) -> str:
    """Fragments, keywords and random code points glued together."""
    parts = []
    for _ in range(rng.randint(0, 4)):
        roll = rng.random()
        if roll < 0.3:
            parts.append(rng.choice(FRAGMENTS))
        elif roll < 0.45:
            parts.append(rng.choice(KEYWORDS))
        else:
            parts.append("".join(random_char(rng) for _ in range(rng.randint(1, 4))))
    return "".join(parts)


# ------------------------------------------------------------------------------------------------
# The fixed corpus
# ------------------------------------------------------------------------------------------------

#: Collection fields of both stores, and what LlamaIndex adds to a node's metadata.
RESERVED = {
    "pk", "text", "vector", "id", "doc_id", "embedding", "_node_content", "_node_type",
    "document_id", "ref_doc_id",
}  # fmt: skip


def usable_key(key: str) -> bool:
    return bool(key) and not key.startswith("$") and key not in RESERVED


_rng = random.Random(20250601)
STRING_KEYS = [
    "s", "and", "json_contains", "with space", 'q"uote', "back\\slash", '"] or true or x["',
    "a.b", "ключ", "nul\x00key", "new\nline",
] + [k for k in (random_string(_rng) for _ in range(2)) if usable_key(k)]  # fmt: skip
INT_KEYS = ["n", "in"]
LIST_KEY = "tags"  # a plain identifier: list overlap works only on those
VALUE_POOL = sorted(set(FRAGMENTS + KEYWORDS + [random_string(_rng) for _ in range(40)]))
INT_POOL = [-(2**63), -5, -1, 0, 1, 2, 7, 2**31, 2**53 + 1, 2**63 - 1]


def corpus_rows(seed: int, n: int) -> dict[str, dict[str, Any]]:
    """``n`` rows of metadata: each key present in about 70% of rows, one type per key."""
    rng = random.Random(seed)
    rows: dict[str, dict[str, Any]] = {}
    for i in range(n):
        md: dict[str, Any] = {}
        for key in STRING_KEYS:
            if rng.random() < 0.7:
                md[key] = rng.choice(VALUE_POOL) if rng.random() < 0.6 else random_string(rng)
        for key in INT_KEYS:
            if rng.random() < 0.7:
                md[key] = rng.choice(INT_POOL)
        if rng.random() < 0.7:
            md[LIST_KEY] = rng.sample(VALUE_POOL, rng.randint(0, 3))
        rows[f"r{i:03d}"] = md
    rows["empty"] = {}
    return rows


ROWS = corpus_rows(7, 60)
#: A smaller corpus for the store paths, which return whole documents.
STORE_ROWS = {pk: ROWS[pk] for pk in [*list(ROWS)[:30], "empty"]}
STORED_STRINGS = sorted({v for md in ROWS.values() for k, v in md.items() if k in STRING_KEYS})

# ------------------------------------------------------------------------------------------------
# Filter strategies (vd dict language)
# ------------------------------------------------------------------------------------------------

string_values = st.one_of(
    st.sampled_from(STORED_STRINGS),
    st.sampled_from(STORED_STRINGS),
    st.sampled_from(FRAGMENTS + KEYWORDS),
    any_text,
)
int_values = st.one_of(st.sampled_from(INT_POOL), st.integers(-10, 10))
fresh_keys = any_text.filter(usable_key)
STRING_OPS = ["$eq", "$ne", "$in", "$nin", "$exists", "$gt", "$gte", "$lt", "$lte"]
LIST_OPS = ["$eq", "$ne", "$in", "$nin", "$exists"]


@st.composite
def condition(draw: Any, values: st.SearchStrategy[Any], ops: list[str]) -> Any:
    """A bare value (``$eq`` sugar) or a dict of one or two operators."""
    if draw(st.integers(0, 4)) == 0:
        return draw(values)
    out: dict[str, Any] = {}
    for op in draw(st.lists(st.sampled_from(ops), min_size=1, max_size=2, unique=True)):
        if op in ("$in", "$nin"):
            out[op] = draw(st.lists(values, max_size=4))
        elif op == "$exists":
            out[op] = draw(st.booleans())
        else:
            out[op] = draw(values)
    return out


def entry(
    string_keys: st.SearchStrategy[str],
    int_keys: st.SearchStrategy[str],
    values: st.SearchStrategy[str],
    list_key: str | None,
) -> st.SearchStrategy[tuple[str, Any]]:
    options = [
        st.tuples(string_keys, condition(values, STRING_OPS)),
        st.tuples(string_keys, condition(values, STRING_OPS)),
        st.tuples(int_keys, condition(int_values, STRING_OPS)),
    ]
    if list_key is not None:
        options.append(st.tuples(st.just(list_key), condition(values, LIST_OPS)))
    return st.one_of(options)


INT_KEY_STRATEGY = st.sampled_from(INT_KEYS)


def dict_filters(
    string_keys: st.SearchStrategy[str],
    int_keys: st.SearchStrategy[str] = INT_KEY_STRATEGY,
    values: st.SearchStrategy[str] = string_values,
    list_key: str | None = LIST_KEY,
    depth: int = 3,
) -> st.SearchStrategy[dict[str, Any]]:
    """vd filters nesting ``$and``/``$or``/``$not`` up to ``depth`` over hostile keys/values."""
    entries = entry(string_keys, int_keys, values, list_key)
    if depth > 0:
        sub = dict_filters(string_keys, int_keys, values, list_key, depth - 1)
        entries = st.one_of(
            entries,
            entries,
            st.tuples(st.just("$and"), st.lists(sub, max_size=3)),
            st.tuples(st.just("$or"), st.lists(sub, min_size=1, max_size=3)),
            st.tuples(st.just("$not"), sub),
        )
    return st.lists(entries, min_size=1, max_size=3).map(dict)


corpus_keys = st.one_of(st.sampled_from(STRING_KEYS), st.sampled_from(STRING_KEYS), fresh_keys)
corpus_filters = dict_filters(corpus_keys)

SETTINGS = settings(
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
        HealthCheck.function_scoped_fixture,
    ],
)


def expected(rows: dict[str, dict[str, Any]], flt: Any) -> set[str]:
    return {pk for pk, md in rows.items() if vd.matches_filter(md, flt)}


# ------------------------------------------------------------------------------------------------
# 1. The core translator on the fixed corpus
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus(milvus_uri: str) -> Iterator[tuple[MilvusClient, str]]:
    client = raw_client(milvus_uri)
    name = f"t_inject_{uuid.uuid4().hex[:8]}"
    create_collection(client, name)
    insert(client, name, ROWS)
    assert query_ids(client, name, None) == set(ROWS)
    # every hostile value and key was stored exactly
    stored = client.query(name, filter='pk != ""', output_fields=["*"], limit=16384)
    for row in stored:
        md = {k: v for k, v in row.items() if k not in ("pk", "vector")}
        assert md == ROWS[row["pk"]]
    yield client, name
    client.drop_collection(name)
    client.close()


POOL = ThreadPoolExecutor(4)


def _count(client: MilvusClient, name: str, expr: str) -> int:
    (row,) = client.query(name, filter=expr, output_fields=["count(*)"])
    return int(row["count(*)"])


def check_many(
    client: MilvusClient,
    name: str,
    rows: dict[str, dict[str, Any]],
    filters: Sequence[dict[str, Any]],
    path: str,
) -> None:
    """Each translated filter, restricted to ``rows``' ids, selects exactly the rows
    ``vd.matches_filter`` accepts (two concurrent ``count(*)`` queries per filter)."""
    scope = None if rows is ROWS else ids_expr("pk", list(rows))
    jobs = []
    for flt in filters:
        expr = translate_filter(flt)
        want = expected(rows, flt)
        hit = and_exprs(ids_expr("pk", sorted(want)), expr) if want else None
        jobs.append((flt, expr, want, and_exprs(scope, expr) or 'pk != ""', hit))
    queries = [q for job in jobs for q in job[3:] if q is not None]
    counts = iter(list(POOL.map(lambda q: _count(client, name, q), queries)))
    for flt, expr, want, _, hit in jobs:
        got_all = next(counts)
        got_hit = next(counts) if hit is not None else 0
        if got_all != len(want) or got_hit != len(want):
            got = query_ids(client, name, and_exprs(scope, expr))
            assert got == want, f"rows={rows!r}\nfilter={flt!r}\nexpr={expr}"
        CASES[path] += 1


def test_core_translator(corpus: tuple[MilvusClient, str]) -> None:
    client, name = corpus

    @settings(SETTINGS, max_examples=60)
    @given(st.lists(corpus_filters, min_size=10, max_size=10))
    def check(filters: list[dict[str, Any]]) -> None:
        check_many(client, name, ROWS, filters, "core")

    check()
    RAN.add("core")


def test_core_sweep_of_every_fragment(corpus: tuple[MilvusClient, str]) -> None:
    """Every fragment and keyword as a value, under every operator, on hostile keys."""
    filters: list[dict[str, Any]] = []
    for value in FRAGMENTS + KEYWORDS:
        for key in ("and", '"] or true or x["'):
            filters += [
                {key: value},
                {key: {"$ne": value}},
                {key: {"$gt": value}},
                {"$not": {key: {"$lte": value}}},
            ]
        filters += [{LIST_KEY: {"$in": [value]}}, {LIST_KEY: {"$nin": [value]}}]
    check_many(*corpus, ROWS, filters, "core sweep")
    RAN.add("core sweep")


# ------------------------------------------------------------------------------------------------
# 2. The core translator on rows hypothesis generates too (values and keys)
# ------------------------------------------------------------------------------------------------

generated_keys = st.lists(fresh_keys, min_size=1, max_size=3, unique=True)


def test_core_translator_on_generated_rows(milvus_uri: str, collection_name: str) -> None:
    """Each example writes a few rows of arbitrary keys and values, then checks 6 filters
    over them (restricted to their ids, as the stores AND ids with filters)."""
    client = raw_client(milvus_uri)
    create_collection(client, collection_name)

    @settings(SETTINGS, max_examples=60)
    @given(generated_keys, st.data())
    def check(keys: list[str], data: st.DataObject) -> None:
        values = st.one_of(any_text, st.sampled_from(FRAGMENTS + KEYWORDS))
        row_strategy = st.fixed_dictionaries({}, optional={k: values for k in keys})
        batch = data.draw(st.lists(row_strategy, min_size=1, max_size=6))
        prefix = uuid.uuid4().hex[:8]
        rows = {f"{prefix}-{i}": md for i, md in enumerate(batch)}
        insert(client, collection_name, rows)
        stored = [v for md in batch for v in md.values()]
        flt_values = st.one_of(st.sampled_from(stored), any_text) if stored else any_text
        key_strategy = st.one_of(st.sampled_from(keys), fresh_keys)
        filters = dict_filters(key_strategy, st.just("n"), flt_values, None, depth=1)
        check_many(
            client,
            collection_name,
            rows,
            data.draw(st.lists(filters, min_size=6, max_size=6)),
            "core generated rows",
        )

    try:
        check()
    finally:
        client.drop_collection(collection_name)
        client.close()
    RAN.add("core generated rows")


# ------------------------------------------------------------------------------------------------
# 3. LlamaIndex MetadataFilters through MilvusVectorStore
# ------------------------------------------------------------------------------------------------

LLAMA_SCALAR_OPS = [
    FilterOperator.EQ, FilterOperator.NE, FilterOperator.GT, FilterOperator.GTE,
    FilterOperator.LT, FilterOperator.LTE, FilterOperator.IN, FilterOperator.NIN,
]  # fmt: skip
LLAMA_LIST_OPS = [FilterOperator.CONTAINS, FilterOperator.ANY, FilterOperator.ALL]
_LIST_ARGS = (FilterOperator.IN, FilterOperator.NIN)


@st.composite
def llama_atom(draw: Any) -> MetadataFilter:
    kind = draw(st.sampled_from(["str", "str", "int", "list"]))
    if kind == "list":
        op = draw(st.sampled_from([*LLAMA_LIST_OPS, FilterOperator.IN, FilterOperator.NIN]))
        key = LIST_KEY
    else:
        op = draw(st.sampled_from(LLAMA_SCALAR_OPS))
        key = draw(corpus_keys if kind == "str" else st.sampled_from(INT_KEYS))
    values = int_values if kind == "int" else string_values
    if op is FilterOperator.CONTAINS or op not in (*LLAMA_LIST_OPS, *_LIST_ARGS):
        value: Any = draw(values)
    else:
        value = draw(st.lists(values, min_size=1 if op is FilterOperator.ALL else 0, max_size=3))
    return MetadataFilter(key=key, operator=op, value=value)


def llama_filters(depth: int = 2) -> st.SearchStrategy[MetadataFilters]:
    children: st.SearchStrategy[Any] = llama_atom()
    if depth > 0:
        children = st.one_of(llama_atom(), llama_atom(), llama_filters(depth - 1))
    return st.builds(
        MetadataFilters,
        filters=st.lists(children, min_size=1, max_size=3),
        condition=st.sampled_from([FilterCondition.AND, FilterCondition.OR, FilterCondition.NOT]),
    )


def test_llama_index_metadata_filters(milvus_uri: str, collection_name: str) -> None:
    store = MilvusVectorStore(uri=milvus_uri, collection_name=collection_name, dim=2)
    rows = {pk: md for pk, md in STORE_ROWS.items() if all(usable_key(k) for k in md)}
    nodes = [
        TextNode(id_=pk, text=f"row {pk}", metadata=md, embedding=[1.0, float(i)])
        for i, (pk, md) in enumerate(rows.items())
    ]
    store.add(nodes)
    everything = MetadataFilters(filters=[])
    stored = {n.node_id: n.metadata for n in store.get_nodes(filters=everything)}
    assert stored == rows  # hostile metadata round-trips through LlamaIndex nodes

    @settings(SETTINGS, max_examples=250)
    @given(llama_filters())
    def check(filters: MetadataFilters) -> None:
        vd_filter = to_vd_filter(filters)
        want = set(rows) if vd_filter is None else expected(rows, vd_filter)
        got = {n.node_id for n in store.get_nodes(filters=filters)}
        assert got == want, f"filters={filters!r}\nexpr={to_milvus_expr(filters)}"
        CASES["llama_index"] += 1

    try:
        check()
    finally:
        store.clear()
        store.close()
    RAN.add("llama_index")


# ------------------------------------------------------------------------------------------------
# 4. LangChain filter= through langchain_vd.Milvus, sync and async
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def langchain_store(milvus_uri: str) -> Iterator[Milvus]:
    store = Milvus(
        None,
        collection_name=f"t_inject_lc_{uuid.uuid4().hex[:8]}",
        connection_args={"uri": milvus_uri},
        index_params={"index_type": "FLAT", "metric_type": "L2"},
    )
    pks = list(STORE_ROWS)
    store.add_embeddings(
        [f"row {pk}" for pk in pks],
        [[1.0, float(i)] for i in range(len(pks))],
        [STORE_ROWS[pk] for pk in pks],
        ids=pks,
    )
    yield store
    store.drop()
    store.close()


def _search_ids(docs: list[Any]) -> set[str]:
    return {doc.id for doc in docs}


def test_langchain_filter_sync(langchain_store: Milvus) -> None:
    k = len(STORE_ROWS)

    @settings(SETTINGS, max_examples=150)
    @given(corpus_filters)
    def check(flt: dict[str, Any]) -> None:
        got = _search_ids(langchain_store.similarity_search_by_vector([1.0, 0.0], k=k, filter=flt))
        assert got == expected(STORE_ROWS, flt), f"filter={flt!r}\nexpr={translate_filter(flt)}"
        CASES["langchain"] += 1

    check()


def test_langchain_filter_async_concurrent(langchain_store: Milvus) -> None:
    """Ten filtered searches at once per example: merged searches keep their own filters."""
    k = len(STORE_ROWS)

    async def run(filters: list[dict[str, Any]]) -> list[set[str]]:
        results = await asyncio.gather(
            *(
                langchain_store.asimilarity_search_by_vector([1.0, 0.0], k=k, filter=f)
                for f in filters
            ),
            langchain_store.asearch_by_metadata(filters[0], limit=k),
        )
        return [_search_ids(docs) for docs in results]

    @settings(SETTINGS, max_examples=15)
    @given(st.lists(corpus_filters, min_size=10, max_size=10))
    def check(filters: list[dict[str, Any]]) -> None:
        *searched, by_metadata = asyncio.run(run(filters))
        for flt, got in zip(filters, searched, strict=True):
            assert got == expected(STORE_ROWS, flt), f"filter={flt!r}\nexpr={translate_filter(flt)}"
            CASES["langchain"] += 1
        assert by_metadata == expected(STORE_ROWS, filters[0])
        CASES["langchain"] += 1

    check()
    RAN.add("langchain")


# ------------------------------------------------------------------------------------------------
# What cannot be stored is refused, at write time and in filters
# ------------------------------------------------------------------------------------------------


def test_unstorable_characters_are_rejected(milvus_uri: str, collection_name: str) -> None:
    """Lone surrogates cannot be encoded as UTF-8: every store refuses them before writing
    (value, key, text, id) and the translators refuse them in filters. NUL and every other
    code point are stored and matched exactly (see the corpus above)."""
    store = Milvus(None, collection_name=collection_name, connection_args={"uri": milvus_uri})
    store.add_embeddings(["keep"], [[1.0, 0.0]], [{"s": "\x00"}], ids=["keep"])
    for kwargs in (
        {"metadatas": [{"s": "ok"}, {"s": "a\ud800"}]},
        {"metadatas": [{"s": "ok"}, {"k\udfff": 1}]},
        {"metadatas": [{"s": "ok"}, {"s": {"nested": ["\udc00"]}}]},
        {"ids": ["fine", "\ud800"]},
    ):
        with pytest.raises(InvalidInputError, match="UTF-8"):
            store.add_embeddings(["a", "b"], [[1.0, 0.0], [0.0, 1.0]], batch_size=1, **kwargs)
    with pytest.raises(InvalidInputError, match="UTF-8"):
        store.add_embeddings(["a", "\ud800"], [[1.0, 0.0], [0.0, 1.0]], batch_size=1)
    with pytest.raises(vd.UnsupportedFilterError, match="UTF-8"):
        store.similarity_search_by_vector([1.0, 0.0], filter={"s": {"$in": ["ok", "\ud800"]}})
    with pytest.raises(vd.UnsupportedFilterError, match="UTF-8"):
        store.similarity_search_by_vector([1.0, 0.0], filter={"k\ud800": 1})
    with pytest.raises(vd.UnsupportedFilterError, match="UTF-8"):
        to_milvus_expr(MetadataFilters(filters=[MetadataFilter(key="s", value="\udfff")]))
    assert [d.id for d in store.search_by_metadata({"s": "\x00"})] == ["keep"]
    assert store.count() == 1
    store.drop()
    store.close()


# ------------------------------------------------------------------------------------------------
# The figure
# ------------------------------------------------------------------------------------------------


def test_case_count(capsys: pytest.CaptureFixture[str]) -> None:
    """The generated cases add up to at least MIN_CASES (when every generator ran)."""
    total = sum(CASES.values())
    with capsys.disabled():
        print(f"\nfilter injection cases: {total} {dict(CASES)}")
    if RAN != GENERATORS:
        pytest.skip(f"only {sorted(RAN)} ran; the total is asserted when all of them run")
    assert total >= MIN_CASES, dict(CASES)
