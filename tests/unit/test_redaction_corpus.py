"""Adversarial corpus for the streaming redactor (core/redactor.py) fed with `secret_forms` output.

Every case is checked against an independent reference: mark each byte covered by any occurrence of any
secret form, replace each maximal run of covered bytes by one mask, leave every other byte as it was. The
redactor must produce exactly that for the whole input at once and for every way of splitting it into
feeds (two-way at every offset, 1-byte feeds, seeded random multi-splits, 64 KiB chunks for big inputs),
and no secret form may be left in the output. Every test runs twice: with the ahocorasick-rs matcher and
with the `bytes.find` fallback (the `engine` fixture).
"""

from __future__ import annotations

import base64
import itertools
import json
import random
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from urllib.parse import quote, quote_plus

import pytest

from sigcli.core import redactor as redactor_module
from sigcli.core.redactor import StreamRedactor
from sigcli.core.secret_forms import secret_forms

MASK = b"****"

# -- credentials (fake values) -----------------------------------------------------------------------

BEARER = "tok/LIVE+9f8e7d6c5b4a/39281706f5e4"  # a token with `/` and `+` (URL-encoded as %2F, %2B)
SESSION = "s3ss-4f9a2b7c81d0e6aa"
CSRF = "csrf-77aa31bc09ff"
THEME = "dark-mode-v2"
COOKIE = f"SESSION={SESSION}; csrf_token={CSRF}; theme={THEME}"
USER = "alice"
PASSWORD = "hunter2-Correct-Horse"
BASIC_B64 = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
SPACED = "open sesame/with+plus and spaces"  # spaces, `/` and `+` (no `=`)
EQUALS = "Zm9vYmFy/c2VjcmV0+a2V5 x=="  # spaces, `/`, `+` and `=` (see test_secret_forms_value_with_equals)
UNICODE = "pässwörd-ünïcode"
QUOTED = 'sk"quoted\\back-5521'  # `"` and `\` are escaped in JSON
# Synthetic secrets for the overlap / containment / near-miss cases.
OVERLAP_A = "abcdefgh"
OVERLAP_B = "efghijkl"
OUTER = "OUTER-inner-SECRET-tail"
INNER = "inner-SECRET"
NEAR = "tok-SECRET-123456"

CREDENTIALS: dict[str, dict[str, str]] = {
    "bearer": {"token": BEARER},
    "cookies": {"cookie": COOKIE},
    "basic": {"username": USER, "password": PASSWORD},
    "spaced": {"api_key": SPACED},
    "equals": {"api_key": EQUALS},
    "unicode": {"password": UNICODE},
    "quoted": {"secret": QUOTED},
    "overlap": {"a": OVERLAP_A, "b": OVERLAP_B},
    "nested": {"outer": OUTER, "inner": INNER},
    "near": {"token": NEAR},
}

FORMS: list[bytes] = sorted({f.encode() for cred in CREDENTIALS.values() for f in secret_forms(cred)})


def b(text: str) -> bytes:
    return text.encode("utf-8")


@pytest.fixture(autouse=True, params=redactor_module.ENGINES)
def engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Which matcher the redactors of this test use: "ahocorasick" (skipped when it is not installed) or
    "find" (ahocorasick_rs hidden, as when it is missing)."""
    if request.param == "ahocorasick":
        pytest.importorskip("ahocorasick_rs")
    else:
        monkeypatch.setattr(redactor_module, "_load_ahocorasick", lambda: None)
    assert StreamRedactor([b"some-secret"]).engine == request.param
    return request.param


# -- reference and drivers ---------------------------------------------------------------------------


_HEXDIGIT = rb"[0-9A-Fa-f]"


def form_pattern(form: bytes) -> bytes:
    """A regex for `form` in which hex digits may be in either case where the form has them as hex: in
    `%XX` and `\\uXXXX` escapes, or everywhere in a hex form of 16 or more hex digits (written independently
    of the redactor's own rule)."""
    if re.fullmatch(rb"[0-9A-Fa-f]{16,}", form):
        return b"".join(b"[" + bytes([c]).lower() + bytes([c]).upper() + b"]" for c in form)
    out, i = [], 0
    while i < len(form):
        if form[i : i + 1] == b"%" and re.fullmatch(_HEXDIGIT * 2, form[i + 1 : i + 3]):
            out += [b"%", *(b"[" + form[j : j + 1].lower() + form[j : j + 1].upper() + b"]" for j in (i + 1, i + 2))]
            i += 3
        elif form[i : i + 2] == b"\\u" and re.fullmatch(_HEXDIGIT * 4, form[i + 2 : i + 6]):
            out += [rb"\\u", *(b"[" + form[j : j + 1].lower() + form[j : j + 1].upper() + b"]" for j in range(i + 2, i + 6))]
            i += 6
        elif form[i : i + 1] == b"\\":
            out.append(re.escape(form[i : i + 2]))
            i += 2
        else:
            out.append(re.escape(form[i : i + 1]))
            i += 1
    return b"".join(out)


def occurrences(data: bytes, forms: Iterable[bytes] = FORMS) -> list[tuple[int, int]]:
    """(start, end) of every occurrence of every form, overlapping ones included."""
    spans = []
    for form in forms:
        pattern = form_pattern(form)
        if pattern == re.escape(form) or b"[" not in pattern:  # exact: plain find is much faster
            start = data.find(form)
            while start != -1:
                spans.append((start, start + len(form)))
                start = data.find(form, start + 1)
            continue
        for hit in re.finditer(b"(?=" + pattern + b")", data):
            spans.append((hit.start(), hit.start() + len(form)))
    return spans


def reference(data: bytes, forms: Iterable[bytes] = FORMS) -> tuple[bytes, int]:
    """Independent expected output: coverage bitmap, then one mask per maximal covered run."""
    covered = bytearray(len(data))
    for start, end in occurrences(data, forms):
        covered[start:end] = b"\x01" * (end - start)
    out: list[bytes] = []
    last = runs = 0
    for run in re.finditer(rb"\x01+", covered):
        out += [data[last : run.start()], MASK]
        last = run.end()
        runs += 1
    out.append(data[last:])
    return b"".join(out), runs


def redact(chunks: Iterable[bytes], forms: Iterable[bytes] = FORMS) -> tuple[bytes, int]:
    redactor = StreamRedactor(forms)
    out = [redactor.feed(chunk) for chunk in chunks]
    out.append(redactor.flush())
    return b"".join(out), redactor.redacted


def split_at(data: bytes, offsets: Iterable[int]) -> list[bytes]:
    cuts = [0, *sorted(set(offsets)), len(data)]
    return [data[s:e] for s, e in itertools.pairwise(cuts)]


class Checker:
    """Runs one input through many splittings; every one must give the reference output."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.expected, self.runs = reference(data)

    def __call__(self, chunks: Sequence[bytes], label: str) -> None:
        """(a) no secret form left, (b)+(c) same output and mask count as the reference."""
        assert b"".join(chunks) == self.data
        out, count = redact(chunks)
        for form in FORMS:
            assert form not in out, f"{label}: secret form {form!r} visible"
        assert out == self.expected, f"{label}: output differs from the reference"
        assert count == self.runs, f"{label}: {count} masks counted, {self.runs} expected"

    def done(self) -> None:
        """Kept so call sites read as a complete check; nothing is tolerated any more."""


# -- the corpus --------------------------------------------------------------------------------------


@dataclass
class Case:
    name: str
    data: bytes
    visible: list[bytes] = field(default_factory=list)  # must still be in the output
    masks: int | None = None  # expected number of masks, when the case is about merging


def _rng_bytes(rng: random.Random, n: int) -> bytes:
    data = bytearray(rng.randbytes(n))
    for i in rng.sample(range(n), n // 50):  # plenty of NULs and other control bytes
        data[i] = rng.choice((0, 0, 0x0A, 0x0D, 0x1B, 0xFF))
    return bytes(data)


def _binary_with_secrets() -> bytes:
    rng = random.Random(20240601)
    parts: list[bytes] = []
    for form in FORMS[::3]:  # a third of them (every form would make the every-offset test slow)
        parts += [_rng_bytes(rng, rng.randrange(0, 300)), form]
    parts.append(_rng_bytes(rng, 200))
    return b"".join(parts)


def _json(ensure_ascii: bool) -> bytes:
    doc = {"token": BEARER, "secret": QUOTED, "password": UNICODE, "key": SPACED, "user": USER}
    return json.dumps(doc, ensure_ascii=ensure_ascii).encode("utf-8") + b"\n"


CASES: list[Case] = [
    Case("bearer_header_crlf", b(f"GET /v1 HTTP/1.1\r\nAuthorization: Bearer {BEARER}\r\nHost: a\r\n\r\n"),
         visible=[b"Authorization: Bearer ****\r\nHost: a\r\n"]),
    Case("crlf_lines", b"\r\n".join([b(BEARER), b(PASSWORD), b"", b(CSRF), b(UNICODE) + b"\r", b"end"]) + b"\r\n",
         visible=[b"****\r\n****\r\n\r\n****\r\n****\r\r\nend\r\n"]),
    Case("ansi_around_secret", b"\x1b[31m" + b(BEARER) + b"\x1b[0m \x1b[1;32m" + b(UNICODE) + b"\x1b[0m\n"
         + b"\x1b[7m" + b(SESSION) + b"\x1b[m",
         visible=[b"\x1b[31m****\x1b[0m \x1b[1;32m****\x1b[0m\n\x1b[7m****\x1b[m"]),
    Case("cookie_header", b(f"Cookie: {COOKIE}\r\nSet-Cookie: SESSION={SESSION}; Path=/; HttpOnly\r\n"),
         # the whole cookie string is a secret (names included); each value alone is one too
         visible=[b"Cookie: ****\r\n", b"Set-Cookie: SESSION=****; Path=/"]),
    Case("basic_auth", b(f"login as {USER}\nAuthorization: Basic {BASIC_B64}\r\nuser={USER}\n"),
         visible=[b"login as alice\n", b"Authorization: Basic ****\r\n", b"user=alice\n"]),
    Case("url_encoded", b("GET /cb?token=" + quote(BEARER, safe="") + "&key=" + quote_plus(SPACED) + "&k2="
                          + quote(SPACED, safe="") + "&pw=" + quote(UNICODE, safe="") + "&eq="
                          + quote(EQUALS, safe="") + " HTTP/1.1\r\n"),
         visible=[b"GET /cb?token=****&key=****&k2=****&pw=****&eq="]),
    Case("json_ascii", _json(True), visible=[b'{"token": "****", "secret": "****", "password": "****"']),
    Case("json_utf8", _json(False), visible=[b'"user": "alice"}\n']),
    Case("equals_value", b(f"key={EQUALS}\nurl={quote(EQUALS, safe='')}\n")),
    Case("utf8_adjacent", b("ü" + UNICODE + "é 日本" + BEARER + "語\n€" + PASSWORD + "€ 🔑" + SESSION + "🔑"),
         visible=[b("ü****é 日本****語\n€****€ 🔑****🔑")]),
    Case("overlapping", b(f"[{OVERLAP_A[:4]}{OVERLAP_B}]"), visible=[b"[****]"], masks=1),
    Case("overlap_chain", b(f"{OVERLAP_A}{OVERLAP_B[4:]}{OVERLAP_A}|{OVERLAP_A}ijk!"), visible=[b"****|****ijk!"],
         masks=2),
    Case("secret_contains_secret", b(f"<{OUTER}> <{INNER}> <{OUTER[:-1]}>"),
         visible=[b"<****> <****> <OUTER-****-tai>"], masks=3),
    Case("same_secret_back_to_back", b(BEARER * 3 + "\n" + PASSWORD * 2 + "\n"), visible=[b"****\n****\n"],
         masks=2),
    Case("different_secrets_touching", b(BEARER + BASIC_B64 + CSRF + " " + SESSION + SESSION), visible=[b"**** ****"],
         masks=2),
    Case("prefix_at_eof", b("partial: " + BEARER[:-1]), visible=[b("partial: " + BEARER[:-1])], masks=0),
    Case("prefix_only", b(BEARER[:-1]), visible=[b(BEARER[:-1])], masks=0),
    Case("near_miss", b(NEAR[:-1] + "X\n" + NEAR[:-1] + "\n" + NEAR + "7\n" + NEAR[:-2]),
         visible=[b(NEAR[:-1] + "X\n" + NEAR[:-1] + "\n****7\n" + NEAR[:-2])], masks=1),
    Case("binary_clean", _rng_bytes(random.Random(7), 6000), masks=0),
    Case("binary_with_secrets", _binary_with_secrets()),
    Case("empty", b"", masks=0),
]
CASE_IDS = [case.name for case in CASES]
SMALL = 1024  # cases up to this size are split at every offset and fed 1 byte at a time


def secret_spans(data: bytes) -> list[tuple[int, int]]:
    spans = []
    for form in FORMS:
        start = data.find(form)
        while start != -1:
            spans.append((start, start + len(form)))
            start = data.find(form, start + 1)
    return spans


def two_way_offsets(data: bytes) -> Iterator[int]:
    """Every offset for small inputs; for bigger ones every offset in and around each secret."""
    if len(data) <= SMALL:
        yield from range(1, len(data))
        return
    near: set[int] = set()
    for s, e in secret_spans(data):
        near.update(range(max(1, s - 2), min(len(data), e + 3)))
    yield from sorted(near)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_whole_input(case: Case) -> None:
    expected, runs = reference(case.data)
    out, count = redact([case.data])
    for form in FORMS:
        assert form not in out
    assert out == expected
    assert count == runs
    for text in case.visible:
        assert text in out
    if case.masks is not None:
        assert runs == case.masks


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_split_in_two_at_every_offset(case: Case) -> None:
    check = Checker(case.data)
    for cut in two_way_offsets(case.data):
        check(split_at(case.data, [cut]), f"cut at {cut}")
    check.done()


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_one_byte_feeds(case: Case) -> None:
    data = case.data
    check = Checker(data)
    check([data[i : i + 1] for i in range(len(data))], "1-byte feeds")
    check.done()


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_random_multi_splits(case: Case) -> None:
    rng = random.Random(f"multi-{case.name}")
    data = case.data
    check = Checker(data)
    for trial in range(40):
        if len(data) < 2:
            break
        cuts = rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(1, 12)))
        check(split_at(data, cuts), f"trial {trial}, cuts {sorted(cuts)}")
    for size in (2, 3, 5, 7, 13, 64):  # regular small chunks
        check([data[i : i + size] for i in range(0, len(data), size)], f"chunks of {size}")
    check.done()


def test_split_inside_multibyte_character() -> None:
    data = b("ü" + UNICODE + "é")
    cuts = [i for i in range(1, len(data)) if data[i] & 0xC0 == 0x80]  # inside a UTF-8 sequence
    assert len(cuts) > 5
    check = Checker(data)
    for cut in cuts:
        check(split_at(data, [cut]), f"cut at {cut}")
    check.done()
    assert redact(split_at(data, cuts))[0] == b("ü****é")


def test_flush_emits_prefix_of_secret_unchanged() -> None:
    redactor = StreamRedactor(FORMS)
    head = b"out: " + b(BEARER)[:-1]
    emitted = redactor.feed(head)
    assert head.startswith(emitted) and len(emitted) < len(head)  # the possible secret is held back
    assert redactor.holding
    assert emitted + redactor.flush() == head
    assert not redactor.holding and redactor.redacted == 0


def test_near_miss_of_long_prefix_is_released() -> None:
    redactor = StreamRedactor(FORMS)
    out = redactor.feed(b(NEAR[:-1]))
    out += redactor.feed(b"X")  # no longer a prefix of any form: everything may go out now
    assert out == b(NEAR[:-1] + "X")
    assert redactor.flush() == b""


# -- big streams -------------------------------------------------------------------------------------

CHUNK = 65536


def _big_stream() -> tuple[bytes, list[int]]:
    """~4 MiB of log-like text with secrets across, ending at and starting at 64 KiB boundaries."""
    rng = random.Random(1234)
    words = [b"GET", b"/api/v1/items", b"200", b"OK", b"latency=12ms", b"user=alice", b"tok-", b"SESSION=",
             b"p\xc3\xa4ss", b"\x1b[32m", b"\r\n", b"\n", b"\x00", b"abcdefg", b"efghijk"]
    filler = bytearray()
    while len(filler) < 4 * 1024 * 1024:
        filler += rng.choice(words) + b" "
    data = bytearray(filler)
    positions: list[int] = []
    specs = [(1, b(BEARER), len(b(BEARER)) // 2), (2, b(UNICODE), 0), (3, b(BASIC_B64), len(b(BASIC_B64))),
             (5, b(OVERLAP_A[:4] + OVERLAP_B), 6), (8, b(SESSION), 1), (13, b(BEARER) * 2, len(b(BEARER))),
             (21, b(PASSWORD), len(b(PASSWORD)) - 1)]
    for k, secret, into in specs:  # secret starts `into` bytes before the k-th chunk boundary
        start = k * CHUNK - into
        data[start : start + len(secret)] = secret
        positions.append(start)
    return bytes(data), positions


def test_big_stream_secret_at_chunk_boundaries() -> None:
    data, positions = _big_stream()
    expected, runs = reference(data)
    assert runs >= len(positions)
    for form in FORMS:
        assert form not in expected
    whole, count = redact([data])
    assert whole == expected and count == runs
    check = Checker(data)
    for size in (CHUNK, CHUNK - 1, CHUNK + 1, 4096, 1 << 20):
        check([data[i : i + size] for i in range(0, len(data), size)], f"chunks of {size}")
    rng = random.Random(99)
    cuts = [p + d for p in positions for d in (-1, 0, 1, 5)] + rng.sample(range(1, len(data)), 200)
    check(split_at(data, cuts), "random cuts around the secrets")
    # The secret straddling the first boundary, cut once more at every offset of itself (64 KiB feeds of
    # the first 256 KiB: the whole stream each time would make this test slow).
    start, window = positions[0], data[: 4 * CHUNK]
    assert start < CHUNK < start + len(b(BEARER))
    check_window = Checker(window)
    for d in range(len(b(BEARER)) + 1):
        cuts = [CHUNK, 2 * CHUNK, 3 * CHUNK, start + d]
        check_window(split_at(window, cuts), f"64 KiB chunks, cut at secret+{d}")
    check_window.done()
    check.done()


def test_big_binary_stream_is_byte_exact() -> None:
    rng = random.Random(4242)
    clean = rng.randbytes(3 * 1024 * 1024)
    out, count = redact([clean[i : i + CHUNK] for i in range(0, len(clean), CHUNK)])
    expected, runs = reference(clean)
    assert out == expected and count == runs
    dirty = bytearray(clean)
    spots = [CHUNK * k - 3 for k in range(1, 40)]
    for spot in spots:
        dirty[spot : spot + len(b(SESSION))] = b(SESSION)
    data = bytes(dirty)
    check = Checker(data)
    check([data[i : i + CHUNK] for i in range(0, len(data), CHUNK)], "64 KiB chunks")
    check.done()
    assert check.runs >= len(spots)
    for spot in spots:  # bytes around each mask are exactly the input's
        assert data[spot - 20 : spot] + MASK in check.expected


# -- the adjacent-mask bug, on its own ---------------------------------------------------------------


@pytest.mark.parametrize("chunks", [
    [b(NEAR), b(NEAR)],  # the split is exactly between the two copies
    [b(NEAR) + b(NEAR)[:1], b(NEAR)[1:]],  # the second copy starts in the first feed
    [b(NEAR), b(INNER)],  # two different secrets touching
], ids=["between", "one-byte-in", "different"])
def test_touching_secrets_across_feeds_one_mask(chunks: list[bytes]) -> None:
    data = b"".join(chunks)
    assert reference(data) == (MASK, 1)
    assert redact([data]) == (MASK, 1)
    assert redact(chunks) == (MASK, 1)


# -- the forms themselves ----------------------------------------------------------------------------


def wire_forms(value: str) -> set[str]:
    """The forms a value can take on the wire, computed independently of secret_forms."""
    forms = {value, quote(value, safe=""), quote_plus(value, safe=""), json.dumps(value)[1:-1],
             json.dumps(value, ensure_ascii=False)[1:-1]}
    return {f for f in forms if len(f) >= 4}


@pytest.mark.parametrize("name", list(CREDENTIALS))
def test_secret_forms_cover_every_wire_form(name: str) -> None:
    """secret_forms gives (at least) these forms; test_redaction_forms.py checks the other encoders."""
    cred = CREDENTIALS[name]
    forms = set(secret_forms(cred))
    if name == "cookies":
        expected = set().union(*(wire_forms(v) for v in (COOKIE, SESSION, CSRF, THEME)))
        assert "SESSION" not in forms and "csrf_token" not in forms  # the names alone are not secrets
    elif name == "basic":
        expected = wire_forms(PASSWORD) | wire_forms(BASIC_B64)
        assert not any(USER in f for f in forms)  # the username is an identifier, not a secret
    else:
        expected = set().union(*(wire_forms(v) for v in cred.values()))
    assert expected <= forms


@pytest.mark.parametrize("value", [EQUALS, "QWxhZGRpbjpvcGVuIHNlc2FtZQ==", "dGVzdA=="])
def test_secret_forms_value_with_equals(value: str) -> None:
    forms = secret_forms({"api_key": value})
    assert wire_forms(value) <= set(forms)
    out, _ = redact([b(f"key: {value}\n")], [f.encode() for f in forms])
    assert out == b"key: ****\n"


def test_secret_overlapping_the_end_of_a_long_run_stays_hidden() -> None:
    forms = [b"abab", b"bQRSTUVW"]
    data = b"ab" * 40000 + b"QRSTUVW\n"  # one covered run of 80 KiB: the second secret overlaps its last byte
    assert reference(data, forms) == (MASK + b"\n", 1)
    assert redact([data], forms) == (MASK + b"\n", 1)
    out, _ = redact([data[:80000], data[80000:]], forms)
    assert b"QRSTUVW" not in out
    assert out == MASK + b"\n"
