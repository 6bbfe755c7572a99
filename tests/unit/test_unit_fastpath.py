"""The start-up fast path: JSON through _json — same results as the json package."""

from __future__ import annotations

import json
import random
import string
from typing import Any

import pytest

from sigcli.core import jsonio


def _value(rnd: random.Random, depth: int = 0) -> Any:
    kind = rnd.randrange(7 if depth < 4 else 5)
    if kind == 0:
        return rnd.choice([None, True, False])
    if kind == 1:
        return rnd.randrange(-(10**15), 10**15)
    if kind == 2:
        return rnd.uniform(-1e9, 1e9)
    if kind in (3, 4):
        alphabet = string.printable + "é€😀\u2028\x00\x1f\"\\"
        return "".join(rnd.choice(alphabet) for _ in range(rnd.randrange(16)))
    if kind == 5:
        return [_value(rnd, depth + 1) for _ in range(rnd.randrange(5))]
    return {"".join(rnd.choice(string.ascii_letters + 'é"\\') for _ in range(rnd.randrange(8))): _value(rnd, depth + 1)
            for _ in range(rnd.randrange(5))}


def test_jsonio_matches_json_package() -> None:
    rnd = random.Random(7)
    for _ in range(2000):
        value = _value(rnd)
        for indent in (None, 2):
            text = json.dumps(value, indent=indent, ensure_ascii=False)
            assert jsonio.dumps(value, indent=indent) == text
            assert jsonio.loads(text) == json.loads(text)
            assert jsonio.loads(text.encode("utf-8")) == json.loads(text)
        assert jsonio.dumps_compact(value) == json.dumps(value, separators=(",", ":"), ensure_ascii=False)


@pytest.mark.parametrize("bad", ["", "{", "[1,]", "{} x", "NaN", "'a'", "[1] [2]", '{"a":1,}', '{"a": "x'])
def test_jsonio_rejects_malformed(bad: str) -> None:
    with pytest.raises(ValueError):
        jsonio.loads(bad)

