"""Validate a parsed config and normalise both formats (v2 and the seed format, README "Configuration") into
one JSON-able model.

Pure: takes the mapping YAML gave (ruamel's, which knows line numbers, or a plain dict) and returns
(normalised config, errors, warnings). Every problem is collected, never just the first.
"""

from __future__ import annotations

import math
from typing import Any

from ..core import strategies
from ..core.duration import parse_duration_ms
from ..core.envtemplate import env_name_problem
from ..core.errors import SigError
from ..core.hosts import split_url, valid_provider_id
from ..core.strategies import NAMES as STRATEGIES
from ..core.text import printable

TOP_KEYS = {"version", "mode", "browser", "storage", "remotes", "watch", "providers", "browserChannel", "sandbox"}
SANDBOX_KEYS = ("hide", "show", "allowWrite", "allowHosts", "denyOtherHosts", "allowTcp")
BROWSER_KEYS = {"browserDataDir", "execPath", "headlessTimeout", "visibleTimeout", "channel", "waitUntil", "adapter",
                "cdpUrl", "cdpAllowRemote"}
PROVIDER_KEYS = {
    "name", "domains", "entryUrl", "validateUrl", "validateRule", "strategy", "extract", "apply", "ttl",
    "networkProxy", "loginMode", "loginUrlPatterns", "oauth2", "url", "requiredCookies", "cookiePaths",
    "forceVisible", "waitUntil", "proxy", "headerName", "headerPrefix", "allowHttp", "caFile", "setupInstructions",
    "ports", "tokenUrl", "clientId", "clientSecret", "scopes", "proxyOnError", "env",
    "userinfoUrl", "redactResponses",
}
OAUTH2_KEYS = {
    "tokenUrl", "scopes", "clientId", "clientSecret", "grant", "authUrl", "deviceUrl", "audience",
    "clientAuth", "redirectPort", "skew", "timeout", "callbackTimeout", "userinfoUrl",
}
EXTRACT_FROM = {"cookies", "localStorage", "prompt", "eval", "header", "token", "oauth2"}
APPLY_IN = ("header", "body", "query")
APPLY_ACTIONS = ("set", "append", "remove")
LOGIN_MODES = ("auto", "headless", "cdp", "visible")
WAIT_UNTIL = ("load", "domcontentloaded", "networkidle", "commit")
DEFAULT_BROWSER = {
    "browserDataDir": "~/.sig/browser-data",
    "execPath": "",
    "headlessTimeout": 20000,
    "visibleTimeout": 120000,
}
DEFAULT_CREDENTIALS_DIR = "~/.sig/credentials"
# The longest browser timeout: what the original's setTimeout can wait (2**31 - 1 ms, ~24.8 days); more,
# infinity or NaN cannot be waited for (and NaN/infinity are not JSON: the config cache could not hold them).
MAX_TIMEOUT_MS = 2**31 - 1
# The longest duration (ttl, watch interval, skew): 100 years. A later date is beyond what sig can print
# (year 9999), and a duration of hundreds of digits is no duration at all.
MAX_DURATION_MS = 100 * 365 * 86_400_000
# An HTTP header name is a token (RFC 9110 §5.1); a header value holds no line break or NUL: either would
# let a config line (or a credential value) start a header of its own, or break `get --format header`.
_TOKEN_CHARS = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_BREAKS = ("\r", "\n", "\x00")
OAUTH2_STRINGS = ("tokenUrl", "clientId", "clientSecret", "grant", "authUrl", "deviceUrl", "audience",
                  "clientAuth", "userinfoUrl")


def _line(container: Any, key: Any) -> int | None:
    """1-based YAML line of `key` in a ruamel container (None for plain dicts/lists)."""
    lc = getattr(container, "lc", None)
    if lc is None:
        return None
    try:
        if isinstance(key, int):
            return int(lc.item(key)[0]) + 1
        return int(lc.key(key)[0]) + 1
    except (KeyError, IndexError, TypeError, AttributeError):
        return None


class _Report:
    def __init__(self) -> None:
        self.errors: list[str] = []
        self.warnings: list[str] = []

    def error(self, msg: str, line: int | None = None) -> None:
        self.errors.append(f"{msg} (line {line})" if line else msg)

    def warn(self, msg: str, line: int | None = None) -> None:
        self.warnings.append(f"{msg} (line {line})" if line else msg)


def _is_str(v: Any) -> bool:
    return isinstance(v, str) and v.strip() != ""


def _shown(value: Any) -> str:
    """A value from the file as a message quotes it: one line, control characters visible, at most 60
    characters (a line break in a value must not start a line of its own in the problem list)."""
    text = value if isinstance(value, str) else repr(value)
    if len(text) > 60:
        text = text[:60] + "…"
    return printable(text, one_line=True)


def _duration_problem(value: Any) -> str | None:
    """Why `value` is not a duration sig can use, or None."""
    ms = parse_duration_ms(value)
    if ms is None:
        return f'"{_shown(value)}" is not a duration (use e.g. "30m", "2h", "7d")'
    if ms > MAX_DURATION_MS:
        return f'"{_shown(value)}" is longer than 100 years'
    return None


def _is_path(value: Any) -> bool:
    """A string the operating system can take as a path (no NUL character)."""
    return isinstance(value, str) and "\x00" not in value


def _is_port(value: Any, allow_zero: bool = False) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and (0 if allow_zero else 1) <= value <= 65535


def _plain(value: Any) -> Any:
    """ruamel containers/scalars -> plain JSON types."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        # .inf/.nan under a key sig does not check: kept as text, since the model must stay JSON (cache, output)
        return float(value) if math.isfinite(value) else str(value)
    return str(value)


def default_apply(strategy: str, entry: dict[str, Any]) -> list[dict[str, str]]:
    """Apply rules a strategy implies when the entry gives none (core/strategies.py)."""
    row = strategies.spec(strategy)
    return row.default_apply(entry) if row is not None else []


def _inject_to_apply(rule: Any, where: str, report: _Report, line: int | None) -> dict[str, str] | None:
    """A seed-format `proxy.inject` rule (`from: credential.*`) -> an apply rule with a ${key} template."""
    if not isinstance(rule, dict):
        report.error(f"{where} must be a mapping", line)
        return None
    source = rule.get("from")
    if not _is_str(source) or not str(source).startswith("credential."):
        report.error(f'{where}.from must be "credential.<field>" (e.g. credential.cookies)', line)
        return None
    field = str(source)[len("credential.") :]
    aliases = {"cookies": "cookie", "cookie": "cookie", "accessToken": "access_token", "key": "token",
               "token": "token", "username": "username", "password": "password"}
    key = field[len("localStorage."):] if field.startswith("localStorage.") else aliases.get(field, field)
    out = {"in": str(rule.get("in") or "header"), "name": str(rule.get("name") or ""),
           "value": "${" + key + "}", "action": str(rule.get("action") or "set")}
    return out


def _check_rules(
    kind: str, rules: Any, pid: str, report: _Report, line: int | None
) -> list[dict[str, Any]]:
    if not isinstance(rules, list):
        report.error(f'Provider "{pid}": "{kind}" must be a list', line)
        return []
    out: list[dict[str, Any]] = []
    for i, rule in enumerate(rules):
        where = f'Provider "{pid}": {kind}[{i}]'
        rline = _line(rules, i) or line
        if not isinstance(rule, dict):
            report.error(f"{where} must be a mapping", rline)
            continue
        if kind == "extract":
            if not _is_str(rule.get("from")):
                report.error(f"{where}.from is required (string)", rline)
            elif str(rule["from"]) not in EXTRACT_FROM:
                report.warn(f'{where}.from "{_shown(rule["from"])}" is not one sig knows ({", ".join(sorted(EXTRACT_FROM))})', rline)
            # `match` says which cookie/key/question; an oauth2 or token rule has nothing to choose from
            required = ("as",) if rule.get("from") in ("oauth2", "token") else ("as", "match")
            for req in required:
                if not _is_str(rule.get(req)):
                    report.error(f"{where}.{req} is required (string)", rline)
            for opt in ("jsonPath", "expiresJsonPath"):
                if opt in rule and not isinstance(rule[opt], str):
                    report.error(f"{where}.{opt} must be a string", rline)
        else:
            if rule.get("in") not in APPLY_IN:
                report.error(f"{where}.in must be one of: {', '.join(APPLY_IN)}", rline)
            if not _is_str(rule.get("name")):
                report.error(f"{where}.name is required (string)", rline)
            elif rule.get("in") == "header" and not set(rule["name"]) <= _TOKEN_CHARS:
                report.error(f'{where}.name "{_shown(rule["name"])}" is not a header name (letters, digits and '
                             "!#$%&'*+-.^_`|~, no spaces)", rline)
            if rule.get("in") == "header" and isinstance(rule.get("value"), str) and \
                    any(c in rule["value"] for c in _BREAKS):
                report.error(f"{where}.value holds a line break or NUL, which no header value may", rline)
            action = rule.get("action", "set")
            if action not in APPLY_ACTIONS:
                report.error(f"{where}.action must be one of: {', '.join(APPLY_ACTIONS)}", rline)
            if action != "remove" and not isinstance(rule.get("value"), str):
                report.error(f"{where}.value is required (string)", rline)
        out.append(_plain(rule))
    return out


def _check_domain(value: Any, where: str, report: _Report, line: int | None) -> str | None:
    if not _is_str(value):
        report.error(f"{where} must be a host name (string)", line)
        return None
    text = str(value).strip()
    if "://" in text or "/" in text or " " in text:
        _, host, _ = split_url(text)
        report.error(f'{where} "{_shown(text)}" is not a host name' + (f' (did you mean "{_shown(host)}"?)' if host else ""),
                     line)
        return None
    if text.count(":") == 1 and not text.startswith("["):
        report.error(f'{where} "{_shown(text)}" has a port; domains are host names only (ports are not compared)',
                     line)
        return None
    return text


def _check_env(env: Any, pid: str, report: _Report, line: int | None) -> None:
    """`env:` maps app variable names to templates: {NAME: "text with {key} or ${key}"}."""
    if not isinstance(env, dict):
        report.error(f'Provider "{pid}": env must be a mapping of variable names to templates, '
                     'e.g. DATABASE_URL: "postgres://app:{password}@db/app"', line)
        return
    for name, template in env.items():
        where = _line(env, name) or line
        problem = env_name_problem(name) if isinstance(name, str) else f"{_shown(name)} is not a variable name"
        if problem and isinstance(name, str):
            problem = problem.replace(f'"{name}"', f'"{_shown(name)}"', 1)
        if problem:
            report.error(f'Provider "{pid}": env: {problem}', where)
        elif not isinstance(template, str):
            report.error(f'Provider "{pid}": env.{name} must be a string template such as "{{token}}"', where)


def _check_oauth2_fields(o: dict[str, Any], pid: str, report: _Report, line: int | None) -> None:
    """Types of the oauth2 settings the token flows read (a number where a URL belongs, a NaN timeout)."""
    for key in OAUTH2_STRINGS:
        if key in o and o[key] is not None and not isinstance(o[key], str):
            report.error(f'Provider "{pid}": oauth2.{key} must be a string', _line(o, key) or line)
    for key in ("timeout", "callbackTimeout"):
        if key in o and o[key] is not None:
            v = o[key]
            if isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v <= MAX_TIMEOUT_MS / 1000:
                report.error(f'Provider "{pid}": oauth2.{key} must be a positive number of seconds', _line(o, key) or line)
    if "redirectPort" in o and o["redirectPort"] is not None and not _is_port(o["redirectPort"], allow_zero=True):
        report.error(f'Provider "{pid}": oauth2.redirectPort must be a port number (0 picks a free one)',
                     _line(o, "redirectPort") or line)
    if "skew" in o and o["skew"] is not None:
        problem = _duration_problem(o["skew"])
        if problem:
            report.error(f'Provider "{pid}": oauth2.skew {problem}', _line(o, "skew") or line)


def _provider(key: Any, entry: Any, report: _Report, pline: int | None) -> dict[str, Any] | None:
    # A YAML key may be a number (`1:` is the id "1"), but null and true/false are no names.
    pid = str(key)
    if key is None or isinstance(key, bool) or not isinstance(key, str | int) or not valid_provider_id(pid):
        report.error(
            f'Provider "{_shown(pid)}": invalid id; use letters, digits, ".", "_" and "-", starting with a letter '
            "or digit",
            pline,
        )
        return None
    if not isinstance(entry, dict):
        report.error(f'Provider "{pid}": must be a mapping', pline)
        return None
    for key in entry:
        if key not in PROVIDER_KEYS:
            report.warn(f'Provider "{pid}": unknown key "{_shown(key)}" (ignored)', _line(entry, key) or pline)
    out: dict[str, Any] = {"id": pid}
    seed_url = entry.get("url")
    if seed_url is not None:
        scheme, host, _ = split_url(str(seed_url)) if _is_str(seed_url) else ("", "", None)
        if not host or scheme not in ("http", "https"):
            report.error(f'Provider "{pid}": url must be an http(s) URL', _line(entry, "url"))
            host = ""
    else:
        host = ""
    # domains
    domains_raw = entry.get("domains")
    if domains_raw is None and host:
        domains_raw = [host]
    if not isinstance(domains_raw, list) or not domains_raw:
        report.error(f'Provider "{pid}": missing required field "domains" (non-empty list of host names)',
                     _line(entry, "domains") or pline)
        domains: list[str] = []
    else:
        domains = []
        for i, d in enumerate(domains_raw):
            ok = _check_domain(d, f'Provider "{pid}": domains[{i}]', report, _line(domains_raw, i) or _line(entry, "domains"))
            if ok:
                domains.append(ok)
    out["domains"] = domains
    # strategy
    strategy = entry.get("strategy")
    sline = _line(entry, "strategy") or pline
    # Only a valid strategy says which other fields are required; a guessed one would add bogus errors.
    strategy_known = strategy in STRATEGIES
    if strategy is None:
        report.error(f'Provider "{pid}": missing required field "strategy" ({", ".join(STRATEGIES)})', pline)
        strategy = strategies.DEFAULT
    elif strategy not in STRATEGIES:
        report.error(f'Provider "{pid}": invalid strategy "{_shown(strategy)}". Valid: {", ".join(STRATEGIES)}', sline)
        strategy = strategies.DEFAULT
    out["strategy"] = strategy
    row = strategies.TABLE[strategy]
    for key in ("name", "entryUrl", "validateUrl", "validateRule", "networkProxy", "headerName",
                "headerPrefix", "caFile", "setupInstructions", "userinfoUrl"):
        if key in entry and entry[key] is not None:
            if not isinstance(entry[key], str):
                report.error(f'Provider "{pid}": {key} must be a string', _line(entry, key))
            elif key == "caFile" and not _is_path(entry[key]):
                report.error(f'Provider "{pid}": caFile must be a file path (it holds a NUL character)',
                             _line(entry, key))
            else:
                out[key] = str(entry[key])
    if "networkProxy" in out:
        # Read here with the parser every user of it shares, so a bad one is reported now, with its line.
        from ..net.network_proxy import NetworkProxy

        try:
            NetworkProxy.parse(out["networkProxy"])
        except SigError as err:  # the message names the setting, never its text (it may hold a password)
            report.error(f'Provider "{pid}": {err.message}; {err.hint}', _line(entry, "networkProxy"))
            del out["networkProxy"]
    if out.get("headerName") and not set(out["headerName"]) <= _TOKEN_CHARS:
        report.error(f'Provider "{pid}": headerName "{_shown(out["headerName"])}" is not a header name',
                     _line(entry, "headerName"))
    if any(c in out.get("headerPrefix", "") for c in _BREAKS):
        report.error(f'Provider "{pid}": headerPrefix holds a line break or NUL', _line(entry, "headerPrefix"))
    if "entryUrl" not in out and _is_str(seed_url):
        out["entryUrl"] = str(seed_url)
    if strategy_known and row.rules_from_config and not out.get("entryUrl"):
        report.error(f'Provider "{pid}": missing required field "entryUrl"', pline)
    if "validateRule" in out:
        # Checked once when the config cache is rebuilt (quickjs stays off the hot path).
        from ..rules.jsrule import rule_syntax_error

        problem = rule_syntax_error(out["validateRule"])
        if problem:
            report.error(f'Provider "{pid}": validateRule is not a valid JavaScript expression: {problem}',
                         _line(entry, "validateRule"))
    if "ttl" in entry and entry["ttl"] is not None:
        problem = _duration_problem(entry["ttl"])
        if problem:
            report.error(f'Provider "{pid}": ttl {problem}', _line(entry, "ttl"))
        else:
            out["ttl"] = str(entry["ttl"])
    if "proxyOnError" in entry:
        if entry["proxyOnError"] not in ("block", "passthrough"):
            report.error(f'Provider "{pid}": proxyOnError must be block or passthrough', _line(entry, "proxyOnError"))
        else:
            out["proxyOnError"] = entry["proxyOnError"]
    if "ports" in entry:
        ports = entry["ports"]
        if not isinstance(ports, list) or not all(isinstance(p, int) and 0 < p < 65536 for p in ports):
            report.error(f'Provider "{pid}": ports must be a list of port numbers', _line(entry, "ports"))
        else:
            out["ports"] = [int(p) for p in ports]
    for key in ("forceVisible", "allowHttp", "redactResponses"):
        if key in entry:
            if not isinstance(entry[key], bool):
                report.error(f'Provider "{pid}": {key} must be true or false', _line(entry, key))
            else:
                out[key] = entry[key]
    if "loginMode" in entry:
        if entry["loginMode"] not in LOGIN_MODES:
            report.error(f'Provider "{pid}": loginMode must be one of: {", ".join(LOGIN_MODES)}', _line(entry, "loginMode"))
        else:
            out["loginMode"] = entry["loginMode"]
    if "waitUntil" in entry:
        if entry["waitUntil"] not in WAIT_UNTIL:
            report.error(f'Provider "{pid}": waitUntil must be one of: {", ".join(WAIT_UNTIL)}', _line(entry, "waitUntil"))
        else:
            out["waitUntil"] = entry["waitUntil"]
    for key in ("loginUrlPatterns", "requiredCookies", "cookiePaths"):
        if key in entry:
            value = entry[key]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                report.error(f'Provider "{pid}": {key} must be a list of strings', _line(entry, key))
            else:
                out[key] = [str(v) for v in value]
    # oauth2
    if "oauth2" in entry and entry["oauth2"] is not None:
        o = entry["oauth2"]
        if not isinstance(o, dict):
            report.error(f'Provider "{pid}": oauth2 must be a mapping', _line(entry, "oauth2"))
        else:
            for key in o:
                if key not in OAUTH2_KEYS:
                    report.warn(f'Provider "{pid}": unknown key "oauth2.{_shown(key)}" (ignored)', _line(o, key))
            if "scopes" in o and not (isinstance(o["scopes"], list) and all(isinstance(s, str) for s in o["scopes"])):
                report.error(f'Provider "{pid}": oauth2.scopes must be a list of strings', _line(o, "scopes"))
            _check_oauth2_fields(o, pid, report, _line(entry, "oauth2"))
            out["oauth2"] = {k: _plain(v) for k, v in o.items() if k in OAUTH2_KEYS}
    # The seed format may give the OAuth2 settings at the provider's top level: fold them into oauth2.
    flat = {k: entry[k] for k in ("tokenUrl", "clientId", "clientSecret", "scopes") if k in entry}
    if flat:
        if strategy != strategies.OAUTH2:
            report.warn(f'Provider "{pid}": {", ".join(flat)} only apply to strategy oauth2 (ignored)', pline)
        elif "scopes" in flat and not (isinstance(flat["scopes"], list)
                                       and all(isinstance(x, str) for x in flat["scopes"])):
            report.error(f'Provider "{pid}": scopes must be a list of strings', _line(entry, "scopes"))
        else:
            out["oauth2"] = {**{k: _plain(v) for k, v in flat.items()}, **(out.get("oauth2") or {})}
    if strategy == strategies.OAUTH2 and seed_url is None and not (out.get("oauth2") or {}).get("tokenUrl"):
        report.error(f'Provider "{pid}": strategy "oauth2" requires an "oauth2" section with "tokenUrl"',
                     _line(entry, "oauth2") or sline)
    # extract / apply
    if "extract" in entry:
        out["extract"] = _check_rules("extract", entry["extract"], pid, report, _line(entry, "extract"))
    elif strategy_known and row.rules_from_config:
        report.error(f'Provider "{pid}": missing required field "extract" (list)', pline)
    elif row.default_extract is not None:
        out["extract"] = [dict(rule) for rule in row.default_extract]
    if "apply" in entry:
        out["apply"] = _check_rules("apply", entry["apply"], pid, report, _line(entry, "apply"))
    elif strategy_known and row.rules_from_config and seed_url is None:
        report.error(f'Provider "{pid}": missing required field "apply" (list)', pline)
    else:
        out["apply"] = default_apply(strategy, out)
    if "env" in entry and entry["env"] is not None:
        _check_env(entry["env"], pid, report, _line(entry, "env"))
        if isinstance(entry["env"], dict):
            out["env"] = {str(k): str(v) for k, v in entry["env"].items()
                          if isinstance(k, str) and isinstance(v, str) and env_name_problem(k) is None}
    proxy = entry.get("proxy")
    if proxy is not None:
        inject = proxy.get("inject") if isinstance(proxy, dict) else None
        if not isinstance(inject, list):
            report.error(f'Provider "{pid}": proxy.inject must be a list', _line(entry, "proxy"))
        else:
            for i, rule in enumerate(inject):
                converted = _inject_to_apply(rule, f'Provider "{pid}": proxy.inject[{i}]', report, _line(inject, i))
                if converted is not None:
                    checked = _check_rules("apply", [converted], pid, report, _line(inject, i))
                    out["apply"] = [*out.get("apply", []), *checked]
    return out


def _check_remote_fields(r: dict[str, Any], name: str, report: _Report, line: int | None) -> None:
    """What becomes the ssh command line: strings (no NUL) and a port number."""
    if isinstance(r.get("host"), str) and not _is_path(r["host"]):
        report.error(f'Remote "{_shown(name)}": host must not hold a NUL character', _line(r, "host") or line)
    for key in ("user", "path", "sshKey"):
        if key in r and r[key] is not None and not _is_path(r[key]):
            report.error(f'Remote "{_shown(name)}": {key} must be a string (without NUL)', _line(r, key) or line)
    port = r.get("port")
    if port is not None and not (_is_port(port) or (isinstance(port, str) and port.isdigit()
                                                      and port.isascii() and _is_port(int(port)))):
        report.error(f'Remote "{_shown(name)}": port must be a port number (1-65535)', _line(r, "port") or line)


def _sandbox(raw: Any, report: _Report, line: int | None) -> dict[str, Any] | None:
    """The `sandbox:` section (defaults of `sig run --sandbox`; sandbox/settings.py reads it)."""
    if not isinstance(raw, dict):
        report.error('"sandbox" must be a mapping', line)
        return None
    out: dict[str, Any] = {}
    for key in raw:
        if key not in SANDBOX_KEYS:
            report.warn(f'unknown key "sandbox.{_shown(key)}" (ignored)', _line(raw, key) or line)
    for key in ("hide", "show", "allowWrite", "allowHosts", "allowTcp"):
        if key not in raw or raw[key] is None:
            continue
        value, kline = raw[key], _line(raw, key) or line
        if not isinstance(value, list) or not all(_is_str(v) and _is_path(v) for v in value):
            report.error(f"sandbox.{key} must be a list of strings", kline)
            continue
        items = [str(v).strip() for v in value]
        if key == "allowHosts":
            items = [h for i, h in enumerate(items)
                     if _check_domain(h, f"sandbox.allowHosts[{i}]", report, _line(value, i) or kline)]
        elif key == "allowTcp":
            for i, item in enumerate(items):
                host, sep, port = item.rpartition(":")
                if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                    report.error(f'sandbox.allowTcp[{i}] "{_shown(item)}" is not HOST:PORT', _line(value, i) or kline)
        out[key] = items
    if "denyOtherHosts" in raw:
        if not isinstance(raw["denyOtherHosts"], bool):
            report.error("sandbox.denyOtherHosts must be true or false", _line(raw, "denyOtherHosts") or line)
        else:
            out["denyOtherHosts"] = raw["denyOtherHosts"]
    return out


def normalise(doc: Any) -> tuple[dict[str, Any], list[str], list[str]]:
    """(normalised config, errors, warnings) of a parsed document, every problem collected."""
    report = _Report()
    if doc is None or not isinstance(doc, dict):
        report.error("the config is empty or not a mapping")
        return {}, report.errors, report.warnings
    for key in doc:
        if key not in TOP_KEYS:
            report.warn(f'unknown top-level key "{_shown(key)}" (ignored)', _line(doc, key))
    cfg: dict[str, Any] = {"version": 2}
    mode = doc.get("mode", "browser")
    if mode not in ("browser", "browserless"):
        report.error("mode must be one of: browser, browserless", _line(doc, "mode"))
        mode = "browser"
    cfg["mode"] = mode
    browser = dict(DEFAULT_BROWSER)
    braw = doc.get("browser")
    if braw is not None:
        if not isinstance(braw, dict):
            report.error('"browser" must be a mapping', _line(doc, "browser"))
        else:
            for key in braw:
                if key not in BROWSER_KEYS:
                    report.warn(f'unknown key "browser.{_shown(key)}" (ignored)', _line(braw, key))
            for key in ("headlessTimeout", "visibleTimeout"):
                if key in braw:
                    v = braw[key]
                    if isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v <= MAX_TIMEOUT_MS:
                        report.error(f"browser.{key} must be a positive number (milliseconds, at most {MAX_TIMEOUT_MS})",
                                     _line(braw, key))
                    else:
                        browser[key] = v
            if "adapter" in braw and braw["adapter"] not in ("cdp", "playwright"):
                report.error("browser.adapter must be cdp or playwright", _line(braw, "adapter"))
            if "cdpAllowRemote" in braw:  # attach to a non-loopback DevTools endpoint (browser/attach.py)
                if not isinstance(braw["cdpAllowRemote"], bool):
                    report.error("browser.cdpAllowRemote must be true or false", _line(braw, "cdpAllowRemote"))
                else:
                    browser["cdpAllowRemote"] = braw["cdpAllowRemote"]
            for key in ("browserDataDir", "execPath", "channel", "waitUntil", "adapter", "cdpUrl"):
                if key in braw and braw[key] is not None:
                    if not isinstance(braw[key], str):
                        report.error(f"browser.{key} must be a string", _line(braw, key))
                    elif not _is_path(braw[key]):
                        report.error(f"browser.{key} must not hold a NUL character", _line(braw, key))
                    else:
                        browser[key] = str(braw[key])
            if "browserDataDir" in braw and not _is_str(braw.get("browserDataDir")):
                report.error("Missing required field: browser.browserDataDir", _line(braw, "browserDataDir"))
    if "browserChannel" in doc:
        if not _is_str(doc["browserChannel"]):
            report.error("browserChannel must be a string (chrome, msedge or chromium)", _line(doc, "browserChannel"))
        else:
            browser["channel"] = str(doc["browserChannel"])
    cfg["browser"] = browser
    storage = {"credentialsDir": DEFAULT_CREDENTIALS_DIR}
    sraw = doc.get("storage")
    if sraw is not None:
        if not isinstance(sraw, dict):
            report.error('"storage" must be a mapping', _line(doc, "storage"))
        elif "credentialsDir" in sraw:
            if not _is_str(sraw["credentialsDir"]):
                report.error("Missing required field: storage.credentialsDir", _line(sraw, "credentialsDir"))
            elif not _is_path(sraw["credentialsDir"]):
                report.error("storage.credentialsDir must not hold a NUL character", _line(sraw, "credentialsDir"))
            else:
                storage["credentialsDir"] = str(sraw["credentialsDir"])
    cfg["storage"] = storage
    remotes: dict[str, Any] = {}
    rraw = doc.get("remotes")
    if rraw is not None:
        if not isinstance(rraw, dict):
            report.error('"remotes" must be a mapping', _line(doc, "remotes"))
        else:
            for name, r in rraw.items():
                rl = _line(rraw, name)
                if not isinstance(r, dict):
                    report.error(f'Remote "{_shown(name)}": must be a mapping', rl)
                    continue
                if r.get("type", "ssh") != "ssh":
                    report.error(f'Remote "{_shown(name)}": only type "ssh" is supported', rl)
                if not _is_str(r.get("host")):
                    report.error(f'Remote "{_shown(name)}": missing required field "host"', rl)
                _check_remote_fields(r, str(name), report, rl)
                remotes[str(name)] = _plain(r)
    cfg["remotes"] = remotes
    watch: dict[str, Any] = {"interval": "5m", "providers": {}}
    wraw = doc.get("watch")
    if wraw is not None:
        if not isinstance(wraw, dict):
            report.error('"watch" must be a mapping', _line(doc, "watch"))
        else:
            if "interval" in wraw:
                problem = _duration_problem(wraw["interval"])
                if problem:
                    report.error(f"watch.interval {problem}", _line(wraw, "interval"))
                else:
                    watch["interval"] = str(wraw["interval"])
            wp = wraw.get("providers")
            if wp is not None:
                if not isinstance(wp, dict):
                    report.error("watch.providers must be a mapping", _line(wraw, "providers"))
                else:
                    for wid, spec in wp.items():
                        if spec is not None and not isinstance(spec, dict):
                            report.error(f"watch.providers.{_shown(wid)} must be a mapping or null", _line(wp, wid))
                            continue
                        auto = (spec or {}).get("autoSync")
                        if auto is not None and not (isinstance(auto, list) and all(isinstance(a, str) for a in auto)):
                            report.error(f"watch.providers.{_shown(wid)}.autoSync must be a list of remote names",
                                         _line(wp, wid))
                        watch["providers"][str(wid)] = _plain(spec)
    cfg["watch"] = watch
    providers: dict[str, Any] = {}
    praw = doc.get("providers")
    if praw is not None:
        if not isinstance(praw, dict):
            report.error('"providers" must be a mapping (or omitted)', _line(doc, "providers"))
        else:
            for pid, entry in praw.items():
                p = _provider(pid, entry, report, _line(praw, pid))
                if p is not None:
                    providers[str(pid)] = p
    cfg["providers"] = providers
    if doc.get("sandbox") is not None:
        sandbox = _sandbox(doc["sandbox"], report, _line(doc, "sandbox"))
        if sandbox is not None:
            cfg["sandbox"] = sandbox
    return cfg, report.errors, report.warnings
