"""The one strict JSON parse every untrusted JSON input goes through (meta.json, lod-meta.json, cameras.json, the
job's metadata sidecars and cached reports)."""

from __future__ import annotations

import pytest

from sogs_compressor.strict_json import MAX_INT_DIGITS, JsonRefused, loads_strict


def test_plain_json_is_read_as_python_does():
    assert loads_strict(b'{"a": [1, 2.5, "x", null, true]}') == {"a": [1, 2.5, "x", None, True]}
    assert loads_strict("[" + "9" * MAX_INT_DIGITS + "]") == [int("9" * MAX_INT_DIGITS)]


@pytest.mark.parametrize("raw, reason", [
    ("[NaN]", "holds NaN, which is not JSON (browsers refuse it)"),
    ('{"a": -Infinity}', "holds -Infinity, which is not JSON"),
    ("[" + "9" * (MAX_INT_DIGITS + 1) + "]", f"holds an integer literal of {MAX_INT_DIGITS + 1} digits"),
    ("[" * 100_000 + "]" * 100_000, "is nested too deeply"),
    ("{bad", "is not valid JSON (Expecting property name enclosed in double quotes at line 1 column 2)"),
    (b"{\"a\": \"\x80\"}", "is not valid JSON (not UTF-8 text"),
])
def test_what_browsers_refuse_is_refused_with_a_reason(raw, reason):
    with pytest.raises(JsonRefused) as refused:
        loads_strict(raw)
    assert str(refused.value).startswith(reason)
