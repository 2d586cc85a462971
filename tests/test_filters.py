"""Tests for the vd-filter -> Milvus expression translator.

The round-trip tests use ``vd.matches_filter`` as the oracle: the ids Milvus Lite
selects with the translated expression must equal the ids whose metadata the
reference implementation accepts.
"""

from __future__ import annotations

import random
import uuid
from typing import Any

import pytest
import vd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymilvus import DataType, MilvusClient

from tests.raw_clients import raw_client
from vd_integrations.core.filters import (
    FieldRef,
    and_exprs,
    compare,
    dynamic_field,
    eq,
    escape_string,
    exists,
    ids_expr,
    is_in,
    json_field,
    literal,
    ne,
    or_exprs,
    scalar_field,
    translate_filter,
)

UnsupportedFilterError = vd.UnsupportedFilterError

# --------------------------------------------------------------------------- #
# Shared data
# --------------------------------------------------------------------------- #

NASTY_STRINGS = [
    "",
    "a",
    "b",
    "A",
    "it's",
    'say "hi"',
    "back\\slash",
    "\\",
    '\\"',
    "trailing\\",
    '" or true or "',
    "' or true or '",
    '") or (true',
    "x) or (1 == 1",
    '$meta["s"]',
    "exists s",
    "line\nbreak",
    "cr\rlf\r\n",
    "tab\there",
    "\x00nul",
    "bs\x08",
    "\x1b[31mred",
    "\x7f",
    "\x0b\x0c",
    "\x85\x9b",
    "ünïcödé",
    "日本語",
    "😀",
    "\u2028\u2029",
    "\\n",
    "\\u0041",
]
# Every C0 control character, DEL and a few C1 controls, raw.
CONTROL_STRINGS = [chr(c) for c in range(32)] + ["\x7f", "\x80", "\x9f", "pre\x00post"]

INT_POOL = [-3, -2, -1, 0, 1, 2, 3, 7, 2**31, -(2**40), 2**53 + 1]
FLOAT_POOL = [-7.75, -2.5, 0.0, 0.5, 1.0, 3.25, 1e-5, 1e20]

# Field name -> value type.  Each field keeps one type across all rows, and
# filters only use operands of that type, because vd.matches_filter (Python)
# and Milvus disagree on mixed types: Python's ``True == 1`` makes bools equal
# to ints, and an ordered comparison between mismatched types is NULL in
# Milvus (so its negation under ``$not`` also excludes the row) while vd treats
# it as False (so its negation includes the row).  Both are documented
# limitations of the translator.  int and float fields are both "numeric" and
# are compared with int and float operands, on which the two agree.
FIELDS: dict[str, str] = {
    "s": "str",
    "n": "int",
    "f": "float",
    "b": "bool",
    "tags": "strlist",
    "nums": "intlist",
    "with space": "str",  # needs $meta["..."]
    "and": "int",  # keyword: needs $meta["..."]
    'we"ird\\key': "float",  # quote and backslash in a $meta key
}
ORDERED_KINDS = {"str", "int", "float"}


def random_metadata(rng: random.Random) -> dict[str, Any]:
    md: dict[str, Any] = {}
    for name, kind in FIELDS.items():
        if rng.random() < 0.25:  # missing in about a quarter of the rows
            continue
        if kind == "str":
            md[name] = rng.choice(NASTY_STRINGS)
        elif kind == "int":
            md[name] = rng.choice(INT_POOL)
        elif kind == "float":
            md[name] = rng.choice(FLOAT_POOL)
        elif kind == "bool":
            md[name] = rng.random() < 0.5
        elif kind == "strlist":
            md[name] = rng.sample(NASTY_STRINGS, rng.randint(0, 3))
        elif kind == "intlist":
            md[name] = [rng.randint(-3, 3) for _ in range(rng.randint(0, 3))]
    return md


def create_collection(client: MilvusClient, name: str, *, json_column: bool = False) -> None:
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=True)
    schema.add_field("pk", DataType.VARCHAR, is_primary=True, max_length=512)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=2)
    if json_column:
        schema.add_field("metadata", DataType.JSON, nullable=True)
    index_params = client.prepare_index_params()
    index_params.add_index(field_name="vector", index_type="FLAT", metric_type="L2")
    client.create_collection(name, schema=schema, index_params=index_params)


def insert(
    client: MilvusClient, name: str, rows: dict[str, dict[str, Any]], *, json_column: bool = False
) -> None:
    data = []
    for i, (pk, md) in enumerate(rows.items()):
        row = {"pk": pk, "vector": [float(i), 1.0]}
        row.update({"metadata": md} if json_column else md)
        data.append(row)
    client.insert(name, data)
    client.load_collection(name)


def query_ids(client: MilvusClient, name: str, expr: str | None) -> set[str]:
    hits = client.query(name, filter=expr or 'pk != ""', output_fields=["pk"], limit=16384)
    return {hit["pk"] for hit in hits}


@pytest.fixture
def client(milvus_uri):
    c = raw_client(milvus_uri)
    yield c
    c.close()


# --------------------------------------------------------------------------- #
# 1. The produced strings
# --------------------------------------------------------------------------- #


def test_escape_string():
    assert escape_string("plain") == '"plain"'
    assert escape_string('a"b') == '"a\\"b"'
    assert escape_string("a\\b") == '"a\\\\b"'
    assert escape_string("\\") == '"\\\\"'
    assert escape_string("n\nr\rt\t") == '"n\\nr\\rt\\t"'
    assert escape_string('" or true or "') == '"\\" or true or \\""'
    # Everything else is emitted raw (Milvus rejects \b, \f, \xNN, \uNNNN escapes).
    assert escape_string("ü日😀\u2028") == '"ü日😀\u2028"'
    assert escape_string("\x00\x08\x0c\x1b\x7f") == '"\x00\x08\x0c\x1b\x7f"'
    assert escape_string("it's") == '"it\'s"'
    with pytest.raises(ValueError, match="UTF-8"):
        escape_string("lone \ud800 surrogate")


def test_literal():
    assert literal(True) == "true"
    assert literal(False) == "false"
    assert literal(0) == "0"
    assert literal(-5) == "-5"
    assert literal(2**63 - 1) == str(2**63 - 1)
    assert literal(1.5) == "1.5"
    assert literal(1e20) == "1e+20"
    assert literal(1e-05) == "1e-05"
    assert literal(-0.0) == "-0.0"
    assert literal("x") == '"x"'
    assert literal(["a", 'b"', 1, 2.5, True]) == '["a", "b\\"", 1, 2.5, true]'
    assert literal(()) == "[]"
    for bad in (float("nan"), float("inf"), -float("inf")):
        with pytest.raises(ValueError, match="finite"):
            literal(bad)
    with pytest.raises(ValueError, match="int64"):
        literal(2**63)
    with pytest.raises(ValueError, match="exists"):
        literal(None)
    with pytest.raises(ValueError, match="dict"):
        literal({"a": 1})


@pytest.mark.parametrize("key", ["year", "_x", "x1", "Year_2024", "andy", "notes", "inx"])
def test_dynamic_field_bare(key):
    assert dynamic_field(key) == FieldRef(expr=key, name_for_functions=key, kind="json")


@pytest.mark.parametrize(
    ("key", "expr"),
    [
        ("and", '$meta["and"]'),
        ("AND", '$meta["AND"]'),
        ("And", '$meta["And"]'),
        ("or", '$meta["or"]'),
        ("not", '$meta["not"]'),
        ("in", '$meta["in"]'),
        ("like", '$meta["like"]'),
        ("Exists", '$meta["Exists"]'),
        ("true", '$meta["true"]'),
        ("False", '$meta["False"]'),
        ("null", '$meta["null"]'),
        ("json_contains_any", '$meta["json_contains_any"]'),
        ("with space", '$meta["with space"]'),
        ("1abc", '$meta["1abc"]'),
        ("a-b", '$meta["a-b"]'),
        ("ü", '$meta["ü"]'),
        ('q"k', '$meta["q\\"k"]'),
        ("b\\k", '$meta["b\\\\k"]'),
        ("new\nline", '$meta["new\\nline"]'),
        ('"] or true or x["', '$meta["\\"] or true or x[\\""]'),
    ],
)
def test_dynamic_field_meta(key, expr):
    ref = dynamic_field(key)
    assert ref.expr == expr
    assert ref.name_for_functions is None


def test_json_and_scalar_fields():
    ref = json_field("metadata", "a b")
    assert ref.expr == ref.name_for_functions == 'metadata["a b"]'
    assert ref.kind == "json"
    assert scalar_field("pk") == FieldRef(expr="pk", name_for_functions=None, kind="scalar")
    for bad in ("a b", "and", "", "1x"):
        with pytest.raises(ValueError):
            scalar_field(bad)
        with pytest.raises(ValueError):
            json_field(bad, "k")
    with pytest.raises(ValueError, match="non-empty"):
        dynamic_field("")


def test_atoms():
    x = dynamic_field("x")
    m = dynamic_field("a b")
    assert eq(x, 1) == "(x == 1)"
    assert eq(x, "v", negate=True) == '((not exists x) or (x != "v"))'
    assert ne(x, 1) == "((not exists x) or (x != 1))"
    assert ne(x, 1, negate=True) == "(x == 1)"
    assert compare(x, "gt", 1) == "(x > 1)"
    assert compare(x, "$gte", 1.5) == "(x >= 1.5)"
    assert compare(x, "<", "b") == '(x < "b")'
    assert compare(x, "lte", 2, negate=True) == "((not exists x) or (x > 2))"
    assert is_in(x, [1, 2]) == "(x == 1 or x == 2 or json_contains_any(x, [1, 2]))"
    assert is_in(x, ["a"], negate=True) == (
        '((not exists x) or (x != "a" and not json_contains_any(x, ["a"])))'
    )
    assert is_in(m, [1]) == '($meta["a b"] == 1)'
    assert is_in(m, [1], negate=True) == '((not exists $meta["a b"]) or ($meta["a b"] != 1))'
    assert is_in(x, (1,)) == "(x == 1 or json_contains_any(x, [1]))"
    assert is_in(x, {"s"}) == '(x == "s" or json_contains_any(x, ["s"]))'
    assert is_in(x, []) == "false"
    assert is_in(x, [], negate=True) == "true"
    assert exists(x) == "(exists x)"
    assert exists(m, negate=True) == '(not exists $meta["a b"])'
    pk = scalar_field("pk")
    assert is_in(pk, ["a"]) == '(pk in ["a"])'
    assert is_in(pk, ["a"], negate=True) == '((pk is null) or (pk not in ["a"]))'
    assert eq(pk, "a", negate=True) == '((pk is null) or (pk != "a"))'
    assert exists(pk) == "(pk is not null)"
    with pytest.raises(ValueError):
        compare(x, "between", 1)


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        (None, None),
        ({}, None),
        ({"a": 1}, "(a == 1)"),
        ({"a": True}, "(a == true)"),
        ({"a": {"$eq": "x"}, "b": {"$ne": 2}}, '((a == "x") and ((not exists b) or (b != 2)))'),
        ({"a": {"$gt": 1, "$lt": 5}}, "((a > 1) and (a < 5))"),
        (
            {"$not": {"a": {"$gt": 1, "$lt": 5}}},
            "(((not exists a) or (a <= 1)) or ((not exists a) or (a >= 5)))",
        ),
        ({"$or": [{"a": 1}, {"b": 2}]}, "((a == 1) or (b == 2))"),
        (
            {"$not": {"$or": [{"a": 1}, {"b": {"$exists": False}}]}},
            "(((not exists a) or (a != 1)) and (exists b))",
        ),
        ({"$not": {"$not": {"a": 1}}}, "(a == 1)"),
        ({"and": '" or true or "'}, '($meta["and"] == "\\" or true or \\"")'),
        ({"a": {"$in": []}}, "false"),
        ({"a": {"$nin": []}}, "true"),
        ({"a": {}}, "true"),
        ({"$and": []}, "true"),
        ({"$or": []}, "false"),
        ({"$not": {}}, "false"),
        ({"$or": [{}, {"a": 1}]}, "true"),
    ],
)
def test_translate_filter_strings(flt, expected):
    assert translate_filter(flt) == expected


def test_custom_resolver():
    def resolve(key: str) -> FieldRef:
        return scalar_field(key) if key == "pk" else json_field("metadata", key)

    assert translate_filter({"pk": {"$in": ["a"]}, "x": {"$nin": [1]}}, resolve=resolve) == (
        '((pk in ["a"]) and ((not exists metadata["x"]) or '
        '(metadata["x"] != 1 and not json_contains_any(metadata["x"], [1]))))'
    )


def test_and_or_exprs_and_ids():
    assert and_exprs() is None
    assert and_exprs(None, "", "  ") is None
    assert and_exprs("a == 1") == "a == 1"
    assert and_exprs("a == 1 or b == 2", None, "c == 3") == "((a == 1 or b == 2) and (c == 3))"
    assert or_exprs("a == 1", "b == 2 and c == 3") == "((a == 1) or (b == 2 and c == 3))"
    assert ids_expr("pk", ["a", 'b"', "c\\"]) == '(pk in ["a", "b\\"", "c\\\\"])'
    assert ids_expr("id", [1, 2]) == "(id in [1, 2])"
    assert ids_expr("pk", []) == "false"
    with pytest.raises(ValueError):
        ids_expr("pk", ["a", 1])
    with pytest.raises(ValueError):
        ids_expr("pk", [True])
    with pytest.raises(ValueError):
        ids_expr("p k", ["a"])


# --------------------------------------------------------------------------- #
# 2. Round trips against Milvus Lite, with vd.matches_filter as the oracle
# --------------------------------------------------------------------------- #

fresh_strings = st.text(st.characters(exclude_categories=("Cs",)), max_size=6)
numbers = st.one_of(
    st.sampled_from(INT_POOL + FLOAT_POOL),
    st.integers(-5, 10),
    st.floats(-10, 10, allow_nan=False, allow_infinity=False),
)


def values_for(kind: str) -> st.SearchStrategy[Any]:
    if kind in ("str", "strlist"):
        # Mostly values present in the data (so filters select something), some fresh.
        stored = st.sampled_from(NASTY_STRINGS)
        return st.one_of(stored, stored, stored, fresh_strings)
    if kind == "bool":
        return st.booleans()
    if kind == "intlist":
        return st.one_of(st.integers(-3, 3), numbers)
    return numbers


@st.composite
def field_conditions(draw, kind: str) -> Any:
    values = values_for(kind)
    if draw(st.integers(0, 4)) == 0:
        return draw(values)  # bare-value equality sugar
    ops = ["$eq", "$ne", "$in", "$nin", "$exists"]
    if kind in ORDERED_KINDS:
        ops += ["$gt", "$gte", "$lt", "$lte"]
    condition = {}
    for op in draw(st.lists(st.sampled_from(ops), min_size=1, max_size=2, unique=True)):
        if op in ("$in", "$nin"):
            condition[op] = draw(st.lists(values, max_size=4))
        elif op == "$exists":
            condition[op] = draw(st.booleans())
        else:
            condition[op] = draw(values)
    return condition


def field_entries(fields: dict[str, str]) -> st.SearchStrategy[tuple[str, Any]]:
    return st.sampled_from(sorted(fields)).flatmap(
        lambda name: field_conditions(fields[name]).map(lambda cond: (name, cond))
    )


def filters(fields: dict[str, str], depth: int) -> st.SearchStrategy[dict[str, Any]]:
    entries = field_entries(fields)
    if depth > 0:
        sub = filters(fields, depth - 1)
        entries = st.one_of(
            entries,
            entries,
            st.tuples(st.just("$and"), st.lists(sub, max_size=3)),
            st.tuples(st.just("$or"), st.lists(sub, max_size=3)),
            st.tuples(st.just("$or"), st.lists(sub, min_size=2, max_size=3)),
            st.tuples(st.just("$not"), sub),
        )
    return st.lists(entries, max_size=2).map(dict)


ORACLE_SETTINGS = settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module")
def oracle_data(milvus_uri):
    """One collection of random metadata, shared by the round-trip oracle tests."""
    rng = random.Random(20240613)
    rows = {f"r{i:03d}": random_metadata(rng) for i in range(80)}
    rows["empty"] = {}
    client = raw_client(milvus_uri)
    name = f"t_oracle_{uuid.uuid4().hex[:8]}"
    create_collection(client, name)
    insert(client, name, rows)
    assert query_ids(client, name, None) == set(rows)
    yield client, name, rows
    client.drop_collection(name)
    client.close()


def assert_round_trip(data, flt: dict[str, Any] | None) -> None:
    client, name, rows = data
    expr = translate_filter(flt)
    expected = {pk for pk, md in rows.items() if vd.matches_filter(md, flt)}
    got = query_ids(client, name, expr)
    assert got == expected, f"filter={flt!r}\nexpr={expr}"


# Per type: values for the deterministic sweep (mostly stored values, one fresh).
SWEEP_VALUES: dict[str, list[Any]] = {
    "str": ["a", '" or true or "', "\x00nul", "line\nbreak", "ünïcödé", "never stored"],
    "int": [-3, 0, 2, 2**53 + 1, 2.5],
    "float": [-2.5, 0.5, 1, 1e20, 4.0],
    "bool": [True, False],
    "strlist": ["a", "it's", "\\", "never stored"],
    "intlist": [-3, 0, 2, 9],
}


def sweep_filters() -> list[dict[str, Any]]:
    """Every operator on every field, with several values, plain and under $not."""
    out: list[dict[str, Any]] = []
    for name, kind in FIELDS.items():
        values = SWEEP_VALUES[kind]
        ops = ["$eq", "$ne"] + (["$gt", "$gte", "$lt", "$lte"] if kind in ORDERED_KINDS else [])
        out += [{name: {"$exists": True}}, {name: {"$exists": False}}]
        out += [{name: {"$in": []}}, {name: {"$nin": []}}]
        out += [{name: {"$in": values[:3]}}, {name: {"$nin": values[:3]}}]
        out += [{name: {"$in": [v]}} for v in values] + [{name: {"$nin": [v]}} for v in values]
        out += [{name: v} for v in values]
        out += [{name: {op: v}} for op in ops for v in values]
    return out + [{"$not": flt} for flt in out]


def test_round_trip_every_atom(oracle_data):
    for flt in sweep_filters():
        assert_round_trip(oracle_data, flt)


def test_round_trip_oracle(oracle_data):
    @ORACLE_SETTINGS
    @given(filters(FIELDS, 3))
    def check(flt):
        assert_round_trip(oracle_data, flt)

    check()


def test_round_trip_json_column(client, collection_name):
    """The same oracle over keys of a declared JSON column (``json_field``)."""
    rng = random.Random(7)
    rows = {f"r{i:03d}": random_metadata(rng) for i in range(40)}
    create_collection(client, collection_name, json_column=True)
    insert(client, collection_name, rows, json_column=True)

    def resolve(key: str) -> FieldRef:
        return json_field("metadata", key)

    @settings(ORACLE_SETTINGS, max_examples=100)
    @given(filters(FIELDS, 2))
    def check(flt):
        expr = translate_filter(flt, resolve=resolve)
        expected = {pk for pk, md in rows.items() if vd.matches_filter(md, flt)}
        assert query_ids(client, collection_name, expr) == expected, f"{flt!r}\n{expr}"

    check()


def test_nasty_values_and_keys_round_trip(client, collection_name):
    """Each nasty string selects exactly its own row, as a value and as a key."""
    strings = list(dict.fromkeys(NASTY_STRINGS + CONTROL_STRINGS))
    rows = {f"v{i}": {"s": v} for i, v in enumerate(strings)}
    # Empty names are rejected and names starting with "$" are operators in the vd language.
    keys = [k for k in strings if k and not k.startswith("$")]
    rows.update({f"k{i}": {k: i} for i, k in enumerate(keys)})
    create_collection(client, collection_name)
    insert(client, collection_name, rows)
    for i, v in enumerate(strings):
        assert query_ids(client, collection_name, translate_filter({"s": v})) == {f"v{i}"}, v
    expr = translate_filter({"s": {"$in": strings}})
    assert query_ids(client, collection_name, expr) == {f"v{i}" for i in range(len(strings))}
    for i, k in enumerate(keys):
        assert query_ids(client, collection_name, translate_filter({k: i})) == {f"k{i}"}, k
        expr = translate_filter({k: {"$exists": True}})
        assert query_ids(client, collection_name, expr) == {f"k{i}"}, k


def test_scalar_field_on_primary_key(client, collection_name):
    rows = {pk: {"x": i} for i, pk in enumerate(["a", "b", 'c"', "d\\", "e\n"])}
    create_collection(client, collection_name)
    insert(client, collection_name, rows)

    def resolve(key: str) -> FieldRef:
        return scalar_field(key) if key == "pk" else dynamic_field(key)

    for flt in [
        {"pk": {"$in": ["a", 'c"', "zz"]}},
        {"pk": {"$nin": ["a", "d\\"]}},
        {"pk": {"$ne": "e\n"}},
        {"pk": {"$gt": "b"}},
        {"$not": {"pk": {"$gt": "b"}, "x": {"$lt": 4}}},
        {"pk": {"$exists": True}},
        {"pk": {"$exists": False}},
    ]:
        expected = {pk for pk, md in rows.items() if vd.matches_filter({**md, "pk": pk}, flt)}
        assert query_ids(client, collection_name, translate_filter(flt, resolve=resolve)) == (
            expected
        ), flt
    assert query_ids(client, collection_name, ids_expr("pk", ["a", "e\n", "nope"])) == {"a", "e\n"}


def test_documented_divergences(client, collection_name):
    """Known differences from vd.matches_filter, pinned so a server change is noticed."""
    rows = {"null": {"x": None}, "list": {"a b": ["p", "q"]}, "scalar": {"a b": "p"}}
    create_collection(client, collection_name)
    insert(client, collection_name, rows)
    # A stored JSON null counts as missing in Milvus; vd treats it as present.
    flt: dict[str, Any] = {"x": {"$exists": True}}
    assert vd.matches_filter(rows["null"], flt)
    assert query_ids(client, collection_name, translate_filter(flt)) == set()
    # $in on a key that must be written $meta["..."] cannot match list values on overlap.
    flt = {"a b": {"$in": ["p"]}}
    assert vd.matches_filter(rows["list"], flt)
    assert query_ids(client, collection_name, translate_filter(flt)) == {"scalar"}


# --------------------------------------------------------------------------- #
# 3. Invalid filters
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    ("flt", "message"),
    [
        ({"a": {"$regex": "x"}}, r"Unknown filter operator '\$regex'.*Supported field operators"),
        ({"a": {"b": 1}}, r"Unknown filter operator 'b'.*Dict values"),
        ({"a": {"$or": [{"b": 1}]}}, r"Logical operators go at the filter level"),
        ({"$nor": [{"a": 1}]}, r"Unknown logical operator '\$nor'"),
        ({"$eq": 1}, r"Unknown logical operator '\$eq'.*\{'field': \{'\$eq': 1\}\}"),
        ({"$and": {"a": 1}}, r"\$and expects a list of filter dicts, got dict"),
        ({"$or": "a"}, r"\$or expects a list of filter dicts, got str"),
        ({"$not": [{"a": 1}]}, r"\$not expects a single filter dict, got list"),
        ({"$and": [1]}, r"A filter must be a dict, got int 1 \(at \$and\[0\]\)"),
        ({"a": {"$in": "x"}}, r"expects a list of values, got str.*\[value\]"),
        ({"a": {"$nin": 1}}, r"expects a list of values, got int"),
        ({"a": {"$in": [[1]]}}, r"must be str, int, float or bool, got list"),
        ({"a": None}, r"None is not a valid filter value.*\$exists"),
        ({"a": {"$eq": None}}, r"None is not a valid filter value"),
        ({"a": {"$ne": None}}, r"None is not a valid filter value"),
        ({"a": {"$in": ["x", None]}}, r"None is not a valid filter value"),
        ({"a": {"$gt": None}}, r"Ordered comparison needs a str, int or float"),
        ({"a": {"$gt": True}}, r"Ordered comparison needs a str, int or float operand, got bool"),
        ({"a": {"$lte": [1]}}, r"Ordered comparison needs"),
        ({"a": {"$exists": "yes"}}, r"\$exists expects True or False"),
        ({"a": [1, 2]}, r"Equality with a list.*\$in"),
        ({"a": {"$eq": {"k": 1}}}, r"Equality with a dict"),
        ({"a": float("nan")}, r"finite"),
        ({"a": {"$lt": float("inf")}}, r"finite"),
        ({"a": 2**64}, r"int64"),
        ({"a": "\ud800"}, r"UTF-8"),
        ({"a": object()}, r"Unsupported filter value"),
        ({1: 2}, r"Filter keys must be strings.*got int 1"),
        ({"": 1}, r"non-empty"),
        ({"$or": [{"a": 1}, {"b": {"$bogus": 1}}]}, r"\(at \$or\[1\]\['b'\]\.\$bogus\)"),
        # Everything is validated, even parts that cannot affect the result.
        ({"$or": [{}, {"a": {"$bogus": 1}}]}, r"\$bogus"),
        ({"$and": [{"$or": []}, {"a": None}]}, r"None"),
        ({"a": {"$in": []}, "b": {"$in": [None]}}, r"None"),
        ({"$not": {"$not": {"a": {"$gt": [1]}}}}, r"Ordered comparison"),
    ],
)
def test_invalid_filters(flt, message):
    with pytest.raises(UnsupportedFilterError, match=message) as info:
        translate_filter(flt)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("flt", ["a == 1", [{"a": 1}], 1])
def test_filter_must_be_a_mapping(flt):
    with pytest.raises(UnsupportedFilterError, match="must be a dict"):
        translate_filter(flt)  # type: ignore[arg-type]
