"""checked_key's inline fast path agrees with the full key validation."""

from __future__ import annotations

from types import SimpleNamespace

from hypothesis import given, settings
from hypothesis import strategies as st

from shoal.api.common import checked_key
from shoal.errors import ShoalError
from shoal.model.values import validate_key

TABLE = SimpleNamespace(key_schema=[("pk", "HASH"), ("sk", "RANGE")], attribute_types={"pk": "S", "sk": "N"})

strings = st.one_of(st.text(max_size=300), st.just(""), st.text(alphabet="\U0001F600", min_size=250, max_size=260))
numbers = st.one_of(st.from_regex(r"-?[0-9]{1,40}(\.[0-9]{0,5})?", fullmatch=True), st.sampled_from(["1E+2", "0.10", "-0", "x"]))
values = st.one_of(
    st.builds(lambda s: {"S": s}, strings),
    st.builds(lambda n: {"N": n}, numbers),
    st.just({"S": "a", "N": "1"}),
    st.just({"B": "YQ=="}),
)
keys = st.dictionaries(st.sampled_from(["pk", "sk", "other"]), values, min_size=0, max_size=3)


def outcome(call, key):
    try:
        return "ok", call(key)
    except ShoalError as exc:
        return "error", (type(exc).__name__, exc.message)


@settings(max_examples=500, deadline=None)
@given(keys)
def test_fast_path_matches_full_validation(key):
    fast = outcome(lambda k: checked_key(TABLE, k), key)
    full = outcome(lambda k: validate_key(k, TABLE.key_schema, TABLE.attribute_types), key)
    assert fast == full
