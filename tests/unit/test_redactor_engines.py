"""The two matchers of the streaming redactor (core/redactor.py): ahocorasick-rs and the `bytes.find`
fallback must give byte-identical output, and ahocorasick_rs is imported only when a redactor with secrets
first scans. The adversarial corpus (test_redaction_corpus.py) runs in both modes too."""

from __future__ import annotations

import itertools
import random
import re
import subprocess
import sys

import pytest

from harness.sigproc import Sig
from sigcli.core import redactor as redactor_module
from sigcli.core.redactor import StreamRedactor

MASK = b"****"


@pytest.fixture(params=redactor_module.ENGINES)
def engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "ahocorasick":
        pytest.importorskip("ahocorasick_rs")
    else:
        monkeypatch.setattr(redactor_module, "_load_ahocorasick", lambda: None)
    return request.param


def reference(data: bytes, forms: list[bytes]) -> tuple[bytes, int]:
    """Mark every byte of every occurrence of every form; each maximal marked run becomes one mask."""
    covered = [False] * len(data)
    for form in forms:
        start = data.find(form)
        while start != -1:
            covered[start : start + len(form)] = [True] * len(form)
            start = data.find(form, start + 1)
    out = bytearray()
    runs = 0
    for is_secret, group in itertools.groupby(zip(covered, data, strict=True), key=lambda pair: pair[0]):
        if is_secret:
            out += MASK
            runs += 1
        else:
            out += bytes(byte for _, byte in group)
    return bytes(out), runs


def redact(chunks: list[bytes], forms: list[bytes]) -> tuple[bytes, int]:
    redactor = StreamRedactor(forms)
    out = b"".join(redactor.feed(chunk) for chunk in chunks) + redactor.flush()
    assert not redactor.holding
    return out, redactor.redacted


def splits(data: bytes, rng: random.Random) -> list[list[bytes]]:
    ways = [[data], [data[i : i + 1] for i in range(len(data))]]
    for _ in range(6):
        cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(1, 8)))) if len(data) > 1 else []
        bounds = [0, *cuts, len(data)]
        ways.append([data[s:e] for s, e in itertools.pairwise(bounds)])
    return ways


def test_engine_is_chosen_as_configured(engine: str) -> None:
    assert StreamRedactor([b"a-secret-value"]).engine == engine
    assert StreamRedactor([]).engine == "find"  # nothing to look for: nothing to import
    assert StreamRedactor(["abc"]).engine == "find"  # shorter than min_len: no forms


def test_random_overlapping_forms_match_the_reference(engine: str) -> None:
    """A 3-letter alphabet makes overlaps, containment, chains and near misses the common case."""
    rng = random.Random(f"engines-{engine}")
    for trial in range(250):
        forms = sorted({bytes(rng.choices(b"abc", k=rng.randint(4, 9))) for _ in range(rng.randint(1, 6))})
        data = bytes(rng.choices(b"abcx", weights=(5, 5, 5, 1), k=rng.randint(0, 160)))
        if rng.random() < 0.5:  # make sure some forms occur, back to back or overlapping
            form = rng.choice(forms)
            at = rng.randint(0, len(data))
            data = data[:at] + form + form[rng.randint(0, len(form)) :] + data[at:]
        expected = reference(data, forms)
        for chunks in splits(data, rng):
            assert redact(chunks, forms) == expected, f"trial {trial}: forms {forms}, data {data!r}, {chunks}"


def test_long_runs_of_overlapping_occurrences(engine: str) -> None:
    forms = [b"abab", b"babb", b"bQRSTUVW", b"xyzxyz"]
    data = b"ab" * 5000 + b"b" + b"ab" * 3000 + b"QRSTUVW" + b"xyz" * 2000 + b"-" + b"ab" * 7 + b"a"
    expected = reference(data, forms)
    assert expected == (MASK + b"-" + MASK + b"a", 2)
    assert redact([data], forms) == expected
    for size in (1000, 4096, 65536):  # (small feeds re-scan the growing held run: slow, not wrong)
        assert redact([data[i : i + size] for i in range(0, len(data), size)], forms) == expected
    for cut in (9999, 10000, 10001, 16001, 16005, 16006, 16007, 16008, len(data) - 16):
        assert redact([data[:cut], data[cut:]], forms) == expected


def test_hits_near_the_edges_of_the_buffer(engine: str) -> None:
    forms = [b"0123456789", b"6789ABCD", b"CDEF"]
    for data in (b"0123456789ABCDEF", b"x0123456789ABCDEFx", b"CDEF0123", b"789ABCDEF", b"6789ABC"):
        expected = reference(data, forms)
        for cut in range(len(data) + 1):
            assert redact([data[:cut], data[cut:]], forms) == expected, (data, cut)


def test_both_engines_agree_on_a_big_log(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("ahocorasick_rs")
    rng = random.Random(77)
    secrets = [f"tok-{n:02d}-" + "".join(rng.choices("abcdef0123456789", k=20)) for n in range(20)]
    forms = [s.encode() for s in secrets] + [s[:12].encode() + b"%2F" for s in secrets[:5]]
    lines = [f"GET /x?t={rng.choice(secrets)} 200\n" if rng.random() < 0.01 else "GET /api/v1/items 200 OK\n"
             for _ in range(60000)]
    data = "".join(lines).encode()
    chunks = [data[i : i + 65536] for i in range(0, len(data), 65536)]
    fast = redact(chunks, forms)
    monkeypatch.setattr(redactor_module, "_load_ahocorasick", lambda: None)
    assert redact(chunks, forms) == fast == reference(data, forms)
    assert fast[1] > 100


def test_automata_shared_and_overlapping_one_built_only_on_a_hit() -> None:
    pytest.importorskip("ahocorasick_rs")
    forms = [b"shared-secret-1", b"shared-secret-2"]
    out, err = StreamRedactor(forms), StreamRedactor(list(reversed(forms)))
    assert out.feed(b"nothing here, nothing at all\n") == b"nothing here, nothing at all\n"
    compiled = out._compiled
    assert out.engine == "ahocorasick" and compiled is err._compiled
    assert compiled._plain is not None and compiled._plain._every is None
    assert out.feed(b"x shared-secret-2 y\n") == b"x **** y\n"
    assert compiled._plain._every is not None


_PROBE = """
import sys
before = set(sys.modules)
from sigcli.core.redactor import StreamRedactor
r = StreamRedactor([b"probe-secret"])
r.feed(b"") ; r.flush()
assert "ahocorasick_rs" not in sys.modules, "imported before any scan"
base = set(sys.modules)
assert r.feed(b"a probe-secret b") == b"a **** b"
assert r.engine == "ahocorasick"
print(" ".join(sorted(set(sys.modules) - base)))
"""


def test_ahocorasick_imported_late_and_light() -> None:
    pytest.importorskip("ahocorasick_rs")
    proc = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert set(proc.stdout.split()) <= {"ahocorasick_rs", "ahocorasick_rs.ahocorasick_rs"}


_RUN = ("import sys, runpy\n"
        "if sys.argv[1] == 'find':\n    sys.modules['ahocorasick_rs'] = None  # as if not installed\n"
        "sys.argv = ['sig', *sys.argv[2:]]\n"
        "runpy.run_module('sigcli', run_name='__main__')\n")

_CHILD = ("import os, sys, time\n"
          "s = os.environ['SIG_API_EXAMPLE_TOKEN']\n"
          "text = 'a ' + s + s + ' b ' + s[:-1] + ' c ' + s[3:] + ' d ' + s + '\\n'\n"
          "for i in range(0, len(text), 5):\n"
          "    sys.stdout.write(text[i : i + 5]); sys.stdout.flush(); time.sleep(0.001)\n"
          "sys.stdout.write(('x' * 70000 + s) * 3 + '\\n')\n")


@pytest.mark.parametrize("mode", redactor_module.ENGINES)
def test_sig_run_redacts_the_same_with_either_engine(sig_init: Sig, mode: str) -> None:
    if mode == "ahocorasick":
        pytest.importorskip("ahocorasick_rs")
    token = "tok-ENGINES-7f3a9c1e55"
    sig_init("login", "https://api.example.com", "--token-stdin", input=token, check=0)
    proc = subprocess.run([sys.executable, "-c", _RUN, mode, "run", "api-example", "--", sys.executable, "-c",
                           _CHILD], env=sig_init.env, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert token not in proc.stdout
    # Exactly as below, unless the loaded machine paused the writer for longer than sig's idle flush:
    # then up to 3 first bytes of a (possible) secret may show before its mask.
    mask = "(?:" + "|".join(re.escape(token[:k]) for k in range(4)) + r")\*\*\*\*"
    head = rf"a {mask} b (?:{re.escape(token[:-1])}|{mask}) c {re.escape(token[3:])} d {mask}\n"
    assert re.fullmatch(head + r"(?:x{70000}\*\*\*\*){3}\n", proc.stdout)
