"""Shared pieces of the parser fuzz tests: hypothesis settings, structure-aware strategies (valid configs,
credential payloads, sealed envelopes) and the mutations applied to them, and the checks every input
must pass ("a clear error or a correct result").

Structure first: a random byte string almost never gets past a YAML or JSON parser, so most inputs are
valid documents with one thing wrong (a wrong type at one field, a null, a huge number, deep nesting, odd
text) or a valid document damaged as text (BOM, CRLF, tabs, duplicate keys, truncation, stray bytes).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st

from sigcli.core.errors import SigError

# Deterministic in CI: the same examples on every run, nothing written to an example database. No
# shrinking unless asked (SIG_FUZZ_SHRINK=1): each example parses real files, so shrinking a failure can
# take minutes; the failing input is printed as drawn.
_PHASES = tuple(Phase) if os.environ.get("SIG_FUZZ_SHRINK") else (Phase.explicit, Phase.generate)
FUZZ = settings(
    derandomize=True,
    database=None,
    phases=_PHASES,
    deadline=None,  # a loaded 2-core machine makes per-example timing noise; PER_INPUT_S bounds it instead
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
                           HealthCheck.function_scoped_fixture],
    print_blob=False,
)

# No input may take longer than this to be accepted or refused (a hang or a blow-up shows as a failure).
PER_INPUT_S = 5.0

# Tracebacks and the CLI's catch-all must never reach the user.
FORBIDDEN_STDERR = ("Traceback", "unexpected internal error")


class Bounded:
    """Times one input; `check()` fails when it took longer than PER_INPUT_S."""

    def __enter__(self) -> Bounded:
        self.start = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        self.elapsed = time.monotonic() - self.start
        if exc[0] is None:
            assert self.elapsed < PER_INPUT_S, f"one input took {self.elapsed:.1f}s (bound {PER_INPUT_S}s)"


def expect_clear_error(err: SigError, code: str, names: str) -> None:
    """A clear error: the expected code, a message naming the file, a hint saying what to do next."""
    assert err.code == code, f"code {err.code} (expected {code}): {err.message}"
    assert names in err.message, f"the message does not name {names!r}: {err.message}"
    assert err.hint.strip(), f"no hint for: {err.message}"
    assert "Traceback" not in err.message


# -- odd values --------------------------------------------------------------------------------------------

LONG = "x" * 20_000
BAD_DURATIONS = ["2 hours", "-1h", "1e3s", "h", "5", "∞d", "1.h", "٣h", "9" * 400 + "d", "99999999999999d",
                 "0.0000001ms", " 5m ", "5M", "5mm", "1_000s", "0x10s"]
BAD_DOMAINS = ["https://x.example.com/", "x.example.com:443", "*", "*.*", "**.example.com", "..", ".", "-a.example",
               "ex ample.com", "[::1", "::1", "[::1]", "xn--", "xn--zz", "a" * 300, "faß.de", "EXAMPLE.COM.",
               "ex\x00ample.com", "exa\nmple.com", "例え.テスト", "*.例え.テスト", "127.0.0.1", "0x7f.1",
               "a..b", "_srv.example.com", "é" * 70]
BAD_URLS = ["javascript:alert(1)", "http://", "https://", "https://[::1", "ftp://x.example.com/", "//x.example.com",
            "http://x.example.com:99999/", "http://x.example.com:-1/", "https://user:pa ss@x.example.com/",
            "https://x.example.com/\x00", "https://%zz/", "HTTPS://X.EXAMPLE.COM", "https://x.example.com:0/",
            "https://例え.テスト/", "http://[v1.x]/", "https://x.example.com" + "/a" * 3000]
ODD_TEMPLATES = ["${", "${}", "}", "${a}${b}", "$${x}", "${" + "a" * 1000 + "}", "${${x}}", "${x", "$x",
                 "\r\nX-Injected: 1", "${token}\r\n", "{token}", "${cookie}; ${cookie}", "\x00", "é${token}é"]
ODD_TEXT = ["", " ", "\t", "\x00", "\u202e", "\ufeff", "\ud7ff", "𝔘𝔫𝔦", "é", "\x1b[31m", "null", "~", "true",
            "0", "-0", "1e309", "NaN", ".inf", "&a", "*a", "!!binary", "'", '"', "#", ": ", "- ", "{", "[",
            "%YAML 1.1", LONG]


def _nested(depth: int, leaf: Any) -> Any:
    value = leaf
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([0, -1, 1, 2**31, 2**63, 10**30, -(10**30), 65535, 65536]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([float("inf"), float("-inf"), 1e308, 5e-324, -0.0]),
    st.text(max_size=40),
    st.sampled_from(ODD_TEXT + BAD_DURATIONS + BAD_DOMAINS + BAD_URLS + ODD_TEMPLATES),
)
nasty_values = st.one_of(
    scalars,
    st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                 | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=6),
    st.integers(min_value=5, max_value=40).map(lambda n: _nested(n, "x")),
    # Nesting deeper than a serialiser would write: a marker that `with_deep_nesting` expands in the text.
    st.integers(min_value=100, max_value=5000).map(lambda n: f"@@DEEP{n}@@"),
)

# -- valid configs ------------------------------------------------------------------------------------------

labels = st.from_regex(r"[a-z][a-z0-9-]{0,10}[a-z0-9]", fullmatch=True)
hosts = st.lists(labels, min_size=2, max_size=4).map(".".join)
domains = st.one_of(hosts, hosts.map(lambda h: "*." + h))
provider_ids = st.from_regex(r"[a-z0-9][a-z0-9._-]{0,24}", fullmatch=True)
value_keys = st.from_regex(r"[a-z][a-z0-9_]{0,11}", fullmatch=True)
durations = st.builds(lambda n, u: f"{n}{u}", st.integers(1, 500), st.sampled_from(["ms", "s", "m", "h", "d"]))


@st.composite
def apply_rules(draw: Callable[..., Any], keys: list[str]) -> list[dict[str, Any]]:
    rules = []
    for _ in range(draw(st.integers(1, 3))):
        key = draw(st.sampled_from(keys))
        rule: dict[str, Any] = {"in": draw(st.sampled_from(["header", "query", "body"])),
                                "name": draw(st.sampled_from(["Authorization", "Cookie", "X-Api-Key", "token"])),
                                "value": draw(st.sampled_from(["${}", "Bearer ${}", "sid=${}; x=1"])).replace(
                                    "${}", "${" + key + "}")}
        action = draw(st.sampled_from([None, "set", "append", "remove"]))
        if action:
            rule["action"] = action
        rules.append(rule)
    return rules


@st.composite
def v2_provider(draw: Callable[..., Any]) -> dict[str, Any]:
    strategy = draw(st.sampled_from(["browser", "prompt", "oauth2", "api-token", "cookie", "basic"]))
    host = draw(hosts)
    entry: dict[str, Any] = {"domains": [host, *draw(st.lists(domains, max_size=2))], "strategy": strategy}
    keys = draw(st.lists(value_keys, min_size=1, max_size=3, unique=True))
    if draw(st.booleans()):
        entry["name"] = draw(st.text(st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]),
                                     min_size=1, max_size=30))
    if strategy in ("browser", "prompt") or draw(st.booleans()):
        entry["entryUrl"] = f"https://{host}/" + draw(st.sampled_from(["", "login", "app?x=1"]))
    if strategy in ("browser", "prompt"):
        source = "cookies" if strategy == "browser" else "prompt"
        entry["extract"] = [{"from": source, "as": k, "match": draw(st.sampled_from(["*", "sid", "API token"]))}
                            for k in keys]
        entry["apply"] = draw(apply_rules(keys))
    elif draw(st.booleans()):
        entry["apply"] = draw(apply_rules(keys))
    if strategy == "oauth2":
        entry["oauth2"] = {"tokenUrl": f"https://{host}/token", "clientId": "client-1",
                           "scopes": draw(st.lists(st.sampled_from(["read", "write", "openid"]), max_size=2))}
        if draw(st.booleans()):
            entry["oauth2"]["grant"] = draw(st.sampled_from(["client_credentials", "authorization_code"]))
    if draw(st.booleans()):
        entry["ttl"] = draw(durations)
    if draw(st.booleans()):
        entry["loginUrlPatterns"] = ["/login", "/auth/sso"]
    if draw(st.booleans()):
        entry["validateUrl"] = f"https://{host}/api/me"
    if strategy == "api-token" and draw(st.booleans()):
        entry["headerName"] = "X-Api-Key"
        entry["headerPrefix"] = ""
    if draw(st.booleans()):
        entry["ports"] = draw(st.lists(st.integers(1, 65535), min_size=1, max_size=2))
    if draw(st.booleans()):
        entry["allowHttp"] = draw(st.booleans())
    if draw(st.booleans()):
        entry["env"] = {"APP_TOKEN": "{" + keys[0] + "}", "APP_URL": "postgres://u:${" + keys[-1] + "}@db/app"}
    return entry


@st.composite
def seed_provider(draw: Callable[..., Any]) -> dict[str, Any]:
    """Seed 000's format: url + strategy (+ requiredCookies, cookiePaths, forceVisible, waitUntil, proxy.inject)."""
    host = draw(hosts)
    strategy = draw(st.sampled_from(["cookie", "oauth2", "api-token", "basic"]))
    entry: dict[str, Any] = {"url": f"https://{host}" + draw(st.sampled_from(["", "/", "/wiki"])),
                             "strategy": strategy}
    if strategy == "cookie":
        if draw(st.booleans()):
            entry["requiredCookies"] = ["SESSION"]
        if draw(st.booleans()):
            entry["cookiePaths"] = ["/wiki"]
    if draw(st.booleans()):
        entry["forceVisible"] = draw(st.booleans())
    if draw(st.booleans()):
        entry["waitUntil"] = draw(st.sampled_from(["load", "domcontentloaded", "networkidle", "commit"]))
    if draw(st.booleans()):
        entry["ttl"] = draw(durations)
    if draw(st.booleans()):
        entry["proxy"] = {"inject": [
            {"in": draw(st.sampled_from(["header", "body", "query"])),
             "action": draw(st.sampled_from(["set", "append", "remove"])),
             "name": "token",
             "from": draw(st.sampled_from(["credential.cookies", "credential.accessToken",
                                           "credential.localStorage.xoxc-token", "credential.token"]))}]}
    return entry


@st.composite
def valid_configs(draw: Callable[..., Any]) -> dict[str, Any]:
    """A config that must load without errors: v2 (the original's) or seed 000's format."""
    seed = draw(st.booleans())
    ids = draw(st.lists(provider_ids, min_size=0, max_size=4, unique=True))
    providers = {pid: draw(seed_provider() if seed else v2_provider()) for pid in ids}
    doc: dict[str, Any] = {}
    if not seed:
        doc["version"] = 2
    doc["mode"] = draw(st.sampled_from(["browser", "browserless"]))
    if seed:
        if draw(st.booleans()):
            doc["browserChannel"] = draw(st.sampled_from(["chrome", "msedge", "chromium"]))
    else:
        doc["browser"] = {"browserDataDir": "~/.sig/browser-data", "execPath": "",
                          "headlessTimeout": draw(st.integers(1, 10**6)), "visibleTimeout": 120000}
        doc["storage"] = {"credentialsDir": "~/.sig/credentials"}
        remote_names = draw(st.lists(labels, max_size=2, unique=True))
        if remote_names:
            doc["remotes"] = {name: {"type": "ssh", "host": draw(hosts), "user": "deploy",
                                     **({"port": draw(st.integers(1, 65535))} if draw(st.booleans()) else {}),
                                     "path": "~/.sig"} for name in remote_names}
        if draw(st.booleans()):
            watched = draw(st.lists(st.sampled_from(ids), unique=True)) if ids else []
            doc["watch"] = {"interval": draw(durations),
                            "providers": {pid: ({"autoSync": list(remote_names)} if remote_names else None)
                                          for pid in watched}}
    doc["providers"] = providers
    return doc


# -- text forms ---------------------------------------------------------------------------------------------

def yaml_text(doc: Any, flow: bool = False) -> str:
    import io

    from ruamel.yaml import YAML

    yaml = YAML(typ="rt")
    yaml.default_flow_style = flow
    yaml.width = 4096
    buf = io.StringIO()
    yaml.dump(doc, buf)
    return buf.getvalue()


def json_text(doc: Any, indent: int | None) -> str:
    return json.dumps(doc, indent=indent, ensure_ascii=indent is None, allow_nan=True)


def with_deep_nesting(text: str) -> str:
    """Each (quoted) deep-nesting marker becomes that many nested flow sequences: `[[[...]]]`."""
    import re

    return re.sub(r"""['"]?@@DEEP(\d+)@@['"]?""", lambda m: "[" * int(m[1]) + "]" * int(m[1]), text)


@st.composite
def config_text(draw: Callable[..., Any], doc: Any) -> str:
    """`doc` as sig may find it: block YAML, flow YAML, or JSON (indented or on one line)."""
    form = draw(st.sampled_from(["yaml", "yaml-flow", "json", "json-compact"]))
    if form == "yaml":
        return with_deep_nesting(yaml_text(doc))
    if form == "yaml-flow":
        return with_deep_nesting(yaml_text(doc, flow=True))
    return with_deep_nesting(json_text(doc, 2 if form == "json" else None))


# -- structure-aware mutations -----------------------------------------------------------------------------

def paths_in(doc: Any, prefix: tuple[Any, ...] = (), limit: int = 400) -> list[tuple[Any, ...]]:
    """Every path to a value inside `doc` (dict keys and list indexes)."""
    out: list[tuple[Any, ...]] = []
    stack = [(prefix, doc)]
    while stack and len(out) < limit:
        path, node = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, child in items:
            out.append((*path, key))
            stack.append(((*path, key), child))
    return sorted(out, key=repr)


def _parent(doc: Any, path: tuple[Any, ...]) -> Any:
    node = doc
    for part in path[:-1]:
        node = node[part]
    return node


@st.composite
def mutated(draw: Callable[..., Any], doc: Any, values: st.SearchStrategy[Any] = nasty_values) -> Any:
    """`doc` (copied) with 1-3 structural changes: a value replaced, a key dropped, an unknown key added,
    a value wrapped in a list, or the whole document replaced by a value of another type."""
    import copy

    doc = copy.deepcopy(doc)
    for _ in range(draw(st.integers(1, 3))):
        paths = paths_in(doc)
        if not paths or draw(st.integers(0, 30)) == 0:
            return draw(values)
        path = draw(st.sampled_from(paths))
        parent = _parent(doc, path)
        key = path[-1]
        op = draw(st.sampled_from(["replace", "replace", "replace", "drop", "add", "wrap"]))
        if op == "replace":
            parent[key] = draw(values)
        elif op == "drop":
            del parent[key]
        elif op == "add" and isinstance(parent, dict):
            parent[draw(st.sampled_from(["extra", "colour", "", "ttl", "domains", "_", "é"]))] = draw(values)
        elif op == "add":
            parent.append(draw(values))
        else:
            parent[key] = [parent[key]]
    return doc


@st.composite
def damaged_text(draw: Callable[..., Any], text: str) -> str:
    """`text` damaged as text: BOM, CRLF, tabs, a duplicated line (duplicate keys), truncation, stray
    characters, a very long line."""
    for _ in range(draw(st.integers(1, 2))):
        op = draw(st.sampled_from(["bom", "crlf", "cr", "tabs", "dupline", "truncate", "insert", "long", "nul"]))
        lines = text.split("\n")
        if op == "bom":
            text = "\ufeff" + text
        elif op == "crlf":
            text = text.replace("\n", "\r\n")
        elif op == "cr":
            text = text.replace("\n", "\r")
        elif op == "tabs":
            text = text.replace("  ", "\t", draw(st.integers(1, 5)))
        elif op == "dupline" and lines:
            i = draw(st.integers(0, len(lines) - 1))
            text = "\n".join([*lines[: i + 1], lines[i], *lines[i + 1 :]])
        elif op == "truncate" and text:
            text = text[: draw(st.integers(0, len(text) - 1))]
        elif op == "insert":
            at = draw(st.integers(0, len(text)))
            text = text[:at] + draw(st.sampled_from([*ODD_TEXT, "\x85", "\u2028", "&a ", "*a", "<<: *a",
                                                     ": :", "- - -", "!!python/object:os.system"])) + text[at:]
        elif op == "long":
            text += "\n# " + "y" * 200_000 + "\n"
        elif op == "nul":
            at = draw(st.integers(0, len(text)))
            text = text[:at] + "\x00" + text[at:]
    return text


# -- credentials --------------------------------------------------------------------------------------------

iso_times = st.builds(
    lambda y, mo, d, h, mi, s, ms: f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}.{ms:03d}Z",
    st.integers(2000, 2090), st.integers(1, 12), st.integers(1, 28), st.integers(0, 23), st.integers(0, 59),
    st.integers(0, 59), st.integers(0, 999))
secret_text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"], exclude_characters="\x00"),
                      min_size=1, max_size=60)


@st.composite
def payloads(draw: Callable[..., Any], provider_id: str) -> dict[str, Any]:
    """A credential payload as sig (version 2, `values`) or the original's v1 plaintext (`credentials`) has it."""
    values = draw(st.dictionaries(value_keys, secret_text, min_size=1, max_size=4))
    v1 = draw(st.integers(0, 4)) == 0
    payload: dict[str, Any] = {"version": 1 if v1 else 2, "providerId": provider_id,
                               "strategy": draw(st.sampled_from(["browser", "api-token", "oauth2", "cookie"])),
                               "updatedAt": draw(iso_times)}
    if draw(st.booleans()):
        payload["expiresAt"] = draw(iso_times)
    payload["credentials" if v1 else "values"] = values
    if draw(st.booleans()):
        payload["oauth2"] = {"clientId": "client-1", "refreshToken": draw(secret_text)}
    if draw(st.booleans()):
        payload["credentialType"] = draw(st.sampled_from(["cookie", "bearer", "api-key", "basic"]))
    return payload


def env_for(home: str) -> dict[str, str]:
    return {"SIG_HOME": home, "HOME": os.path.dirname(home)}
