"""JSON without the `json` package's start-up cost.

`import json` pulls in `re` and `enum` (≈15 ms, a third of `sig get`). The C accelerator `_json` that
`json` itself uses needs neither, so the hot path (read a credential, print headers) goes through it
directly. Output matches `json.dumps(obj, indent=…, ensure_ascii=False)` for the types sig writes
(dict, list, str, int, float, bool, None). Anything unusual falls back to the `json` package.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_WS = " \t\n\r"


class _Context:
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = None


def _constant(name: str) -> float:
    raise ValueError(f"unsupported JSON constant {name}")


_scanner = None


def loads(text: str | bytes) -> Any:
    """Parse a JSON document. Raises ValueError on malformed input (as json.loads does), on bytes that are
    not UTF-8 (UnicodeDecodeError is one) and on nesting too deep for the parser (a few thousand brackets:
    the decoder recurses, and its RecursionError would otherwise escape every caller's `except ValueError`)."""
    if isinstance(text, bytes | bytearray):
        text = bytes(text).decode("utf-8-sig")
    try:
        value = _loads(text)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    # A \uD800-\uDFFF escape is half of a character unless its pair follows (which the decoder joins). A
    # lone half is no text: no file, terminal or environment variable can take it, so every later use
    # would fail. Looked for only when such an escape appears at all (a substring search).
    if ("\\ud" in text or "\\uD" in text) and _has_lone_surrogate(value):
        raise ValueError("a \\u escape in the JSON is half of a character (a lone surrogate)")
    return value


def _has_lone_surrogate(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _loads(text: str) -> Any:
    global _scanner
    try:
        import _json
    except ImportError:  # pragma: no cover - CPython always has it
        import json

        return json.loads(text)
    if _scanner is None:
        ctx = _Context()
        ctx.parse_constant = _constant  # type: ignore[assignment]
        _scanner = _json.make_scanner(ctx)  # type: ignore[arg-type]  # the C scanner reads only these attributes
    start = 0
    while start < len(text) and text[start] in _WS:
        start += 1
    try:
        value, end = _scanner(text, start)
    except (StopIteration, SystemError):
        # _json reports syntax errors through json.decoder, which is not loaded on this path: let the
        # json package parse it again, which raises a proper JSONDecodeError (a ValueError).
        import json

        return json.loads(text)
    while end < len(text) and text[end] in _WS:
        end += 1
    if end != len(text):
        raise ValueError("extra data after the JSON document")
    return value


def _encode(value: Any, indent: int | None, level: int, out: list[str], esc: Any) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        out.append(esc(value))
    elif isinstance(value, int):
        out.append(int.__repr__(value))
    elif isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError("NaN and infinity are not JSON")
        out.append(float.__repr__(value))
    elif isinstance(value, dict | list | tuple):
        items = list(value.items()) if isinstance(value, dict) else list(value)
        opener, closer = ("{", "}") if isinstance(value, dict) else ("[", "]")
        if not items:
            out.append(opener + closer)
            return
        if indent is None:
            sep, pad, end = ", ", "", ""
        else:
            pad = "\n" + " " * (indent * (level + 1))
            end = "\n" + " " * (indent * level)
            sep = ","
        out.append(opener)
        for i, item in enumerate(items):
            if i:
                out.append(sep)
            out.append(pad)
            if isinstance(value, dict):
                key, val = item
                if not isinstance(key, str):
                    raise TypeError("JSON object keys must be strings here")
                out.append(esc(key))
                out.append(": ")
                _encode(val, indent, level + 1, out, esc)
            else:
                _encode(item, indent, level + 1, out, esc)
        out.append(end)
        out.append(closer)
    else:
        raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def dumps(value: Any, indent: int | None = None) -> str:
    """json.dumps(value, indent=indent, ensure_ascii=False) for plain data."""
    try:
        from _json import encode_basestring as esc
    except ImportError:  # pragma: no cover
        import json

        return json.dumps(value, indent=indent, ensure_ascii=False)
    out: list[str] = []
    _encode(value, indent, 0, out, esc)
    return "".join(out)


def dumps_compact(value: Any) -> str:
    """json.dumps(value, separators=(",", ":"), ensure_ascii=False)."""
    try:
        from _json import encode_basestring as esc
    except ImportError:  # pragma: no cover
        import json

        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    out: list[str] = []
    _encode_compact(value, out, esc)
    return "".join(out)


def _encode_compact(value: Any, out: list[str], esc: Any) -> None:
    if isinstance(value, dict):
        out.append("{")
        for i, (k, v) in enumerate(value.items()):
            if i:
                out.append(",")
            out.append(esc(k))
            out.append(":")
            _encode_compact(v, out, esc)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for i, v in enumerate(value):
            if i:
                out.append(",")
            _encode_compact(v, out, esc)
        out.append("]")
    else:
        _encode(value, None, 0, out, esc)
