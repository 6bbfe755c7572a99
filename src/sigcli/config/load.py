"""Load config.yaml into a `Config`; a JSON cache keyed on the file's identity keeps YAML off the hot path.

The cache (`$SIG_HOME/cache/config.json`) holds the normalised model only, never a secret value that the
YAML file did not already hold in clear. It is rebuilt whenever config.yaml changes (path, inode, size or
mtime differ), and ignored if it cannot be read.
"""

from __future__ import annotations

import os

from ..core.errors import ErrorCode, SigError
from ..core.hosts import canonical_host, domain_matches, split_url
from ..core.model import Provider
from . import paths

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from ..store.credentials import CredentialStore

CACHE_VERSION = 6  # 4: files with YAML anchors/aliases no longer load; 5: stricter types (NUL in paths, NaN, …); 6: sandbox section


class Config:
    """The normalised config: settings plus providers in file order."""

    def __init__(self, data: dict[str, Any], path: str, warnings: list[str] | None = None) -> None:
        self.data = data
        self.path = path
        self.warnings = warnings or []
        self.providers: dict[str, Provider] = {
            pid: Provider(entry) for pid, entry in (data.get("providers") or {}).items()
        }

    @property
    def mode(self) -> str:
        """"browser" or "browserless" (no browser on this machine)."""
        mode: str = self.data.get("mode", "browser")
        return mode

    @property
    def browser(self) -> dict[str, Any]:
        """The browser section (binary, profile, timeouts, adapter, cdpUrl)."""
        return dict(self.data.get("browser") or {})

    @property
    def credentials_dir(self) -> str:
        """storage.credentialsDir, expanded (default ~/.sig/credentials)."""
        return paths.expand_path((self.data.get("storage") or {}).get("credentialsDir") or "~/.sig/credentials")

    @property
    def remotes(self) -> dict[str, Any]:
        """The SSH remotes by name."""
        return dict(self.data.get("remotes") or {})

    @property
    def watch(self) -> dict[str, Any]:
        """The watch section: interval and the providers watched."""
        return dict(self.data.get("watch") or {"interval": "5m", "providers": {}})

    def get(self, provider_id: str) -> Provider | None:
        """The provider with this exact id, or None."""
        return self.providers.get(provider_id)

    def resolve(self, text: str) -> Provider | None:
        """Id, then case-insensitive name, then host (exact domains first, then globs), in config order."""
        if not text:
            return None
        if text in self.providers:
            return self.providers[text]
        folded = text.casefold()
        for provider in self.providers.values():
            if provider.get("name") and str(provider.get("name")).casefold() == folded:
                return provider
        return self.resolve_host(text)

    def resolve_host(self, text: str) -> Provider | None:
        """The provider whose domains cover the host of `text` (exact domains before globs), or None."""
        _, host, _ = split_url(text)
        if not host:
            return None
        for provider in self.providers.values():
            if any("*" not in d and canonical_host(d) == host for d in provider.domains):
                return provider
        for provider in self.providers.values():
            if any("*" in d and domain_matches(d, host) for d in provider.domains):
                return provider
        return None


def stat_key(path: str) -> list[int] | None:
    """What identifies a version of a file: inode, size, mtime, ctime (None if missing). The one "has the
    config changed?" test: the config cache (below) and the SDK's reload compare it."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def _check_config_file(path: str) -> None:
    """The config (a symbolic link's target: dotfile managers link it) must be a regular file that is yours
    (or root's) and that no other user can change: it decides which hosts get the credentials."""
    import stat

    from ..store.files import Guard

    try:
        st = os.stat(path)
    except OSError:
        return  # gone since stat_key: reading it reports that
    if not stat.S_ISREG(st.st_mode):
        raise SigError(ErrorCode.CONFIG_ERROR, f"{path} is not a regular file",
                       f"move it away (mv {path} {path}.bad), then run `sig init`")
    Guard("the config", 0o022, 0o600, "run `sig init` for a fresh one", ErrorCode.CONFIG_ERROR).check(st, path)


def _cache_path() -> str:
    return os.path.join(paths.cache_dir(), "config.json")


def _read_cache(path: str, key: list[int]) -> Config | None:
    from ..core.jsonio import loads

    try:
        with open(_cache_path(), "rb") as fh:
            st = os.fstat(fh.fileno())
            if st.st_uid != os.geteuid() or st.st_mode & 0o022:
                return None  # not written by sig for you: ignored, and replaced on the next parse
            cached = loads(fh.read())
    except (OSError, ValueError):
        return None
    if (
        not isinstance(cached, dict)
        or cached.get("v") != CACHE_VERSION
        or cached.get("path") != path
        or cached.get("key") != key
        or not _cache_shape_ok(cached)
    ):
        return None
    return Config(cached["config"], path, cached["warnings"])


def _cache_shape_ok(cached: dict[str, Any]) -> bool:
    """The cache's outline is what `_write_cache` writes (sections are mappings, each provider a mapping
    with its own id, warnings text). sig writes it atomically, so anything else is a damaged or foreign
    file: parsing config.yaml again costs a few milliseconds, a crash on a malformed model costs more.
    The values inside were validated when the cache was written and are not checked again here (that
    would put the schema's imports on every command's start-up)."""
    data = cached.get("config")
    warnings = cached.get("warnings")
    if not isinstance(data, dict) or not isinstance(warnings, list) or \
            not all(isinstance(w, str) for w in warnings):
        return False
    if not all(isinstance(data.get(k), dict) for k in ("browser", "storage", "remotes", "watch", "providers")):
        return False
    if data.get("mode") not in ("browser", "browserless"):
        return False
    providers = data["providers"]
    return all(isinstance(p, dict) and p.get("id") == pid and isinstance(p.get("domains", []), list)
               for pid, p in providers.items())


def _write_cache(path: str, key: list[int], config: Config) -> None:
    from ..core.jsonio import dumps_compact
    from ..store.files import atomic_write, ensure_dir

    body = {"v": CACHE_VERSION, "path": path, "key": key, "config": config.data, "warnings": config.warnings}
    try:
        ensure_dir(paths.cache_dir())
        atomic_write(_cache_path(), dumps_compact(body).encode("utf-8"))
    except (OSError, SigError):
        pass  # the cache only saves time


def provider_not_found(target: str) -> SigError:
    """The error for a name/URL that no provider resolves to (shared by the CLI, `request` and the SDK)."""
    return SigError(
        ErrorCode.PROVIDER_NOT_FOUND,
        f'no provider matches "{target}"',
        "run `sig providers` to list providers, or `sig login <url>` to add one",
    )


def missing_config_error(path: str) -> SigError:
    """CONFIG_ERROR for a missing config file, saying to run `sig init`."""
    return SigError(
        ErrorCode.CONFIG_ERROR,
        f"no config file found at {path}",
        "run `sig init` to set up sig (add --remote on a machine without a browser)",
    )


# Nesting deeper than this is refused while parsing. A real config nests about seven levels (providers →
# id → proxy → inject → rule → field); a few thousand brackets would otherwise exhaust Python's stack in the
# recursive YAML composer (RecursionError) and, past it, in everything that walks the result.
MAX_DEPTH = 64


class _Refused(Exception):
    """Something sig refuses while parsing one of its files (an alias, nesting too deep, a value that cannot
    be read), and where it is (1-based line and column)."""

    def __init__(self, what: str, line: int, column: int) -> None:
        super().__init__(what)
        self.what, self.line, self.column = what, line, column


_CLASSES: tuple[Any, Any] | None = None


def _safe_yaml_classes() -> tuple[Any, Any]:
    """ruamel's round-trip composer and constructor, refusing what a config never needs as they meet it.

    Anchors and aliases (before anything is expanded): they let a 1 KB file stand for gigabytes once
    something walks it (the "billion laughs"), and every later command would pay for it. Nesting deeper
    than MAX_DEPTH. And a scalar that cannot be converted (an integer of thousands of digits: Python's
    int() refuses it with a bare ValueError that would otherwise escape as an internal error), or a key that
    cannot be one (a list holding a mapping: TypeError, unhashable)."""
    global _CLASSES
    if _CLASSES is None:
        from ruamel.yaml.composer import Composer
        from ruamel.yaml.constructor import RoundTripConstructor
        from ruamel.yaml.events import AliasEvent

        class SafeComposer(Composer):
            _depth = 0

            def compose_node(self, parent: Any, index: Any) -> Any:
                event = self.parser.peek_event()
                mark = event.start_mark
                if isinstance(event, AliasEvent) or getattr(event, "anchor", None) is not None:
                    kind = "an alias" if isinstance(event, AliasEvent) else "an anchor"
                    raise _Refused(kind, mark.line + 1, mark.column + 1)
                if self._depth >= MAX_DEPTH:
                    raise _Refused("nesting", mark.line + 1, mark.column + 1)
                self._depth += 1
                try:
                    return super().compose_node(parent, index)
                finally:
                    self._depth -= 1

        class SafeConstructor(RoundTripConstructor):
            def construct_object(self, node: Any, deep: bool = False) -> Any:
                if isinstance(node.value, str) and not node.value.isascii():
                    node.value = _whole_characters(node.value, node.start_mark)
                try:
                    return super().construct_object(node, deep)
                except (ValueError, OverflowError) as exc:
                    mark = node.start_mark
                    reason = str(exc).split(":")[0][:120] or type(exc).__name__
                    raise _Refused(f"value:{reason}", mark.line + 1, mark.column + 1) from None
                except (AttributeError, IndexError, KeyError, TypeError):
                    # ruamel's own constructors fail this way on an explicit tag that does not fit its value
                    # (`!!int ""`, `!!omap x`)
                    mark = node.start_mark
                    tag = str(getattr(node, "tag", "") or "")
                    raise _Refused(f"value:{_shown_tag(tag)} does not fit this value", mark.line + 1,
                                   mark.column + 1) from None

            def check_mapping_key(self, node: Any, key_node: Any, mapping: Any, key: Any, value: Any) -> Any:
                try:
                    return super().check_mapping_key(node, key_node, mapping, key, value)
                except TypeError:  # `[{a: 1}]: x`: a key holding a mapping cannot be hashed
                    mark = key_node.start_mark
                    raise _Refused("value:a list or mapping used as a key", mark.line + 1, mark.column + 1) \
                        from None

        _CLASSES = (SafeComposer, SafeConstructor)
    return _CLASSES


def _shown_tag(tag: str) -> str:
    short = tag.replace("tag:yaml.org,2002:", "!!")
    return f"the tag {short[:40]}" if short else "its type"


def _whole_characters(value: str, mark: Any) -> str:
    """YAML decodes each \\uXXXX escape on its own, so the pair JSON writes for a character beyond U+FFFF
    (`json.dumps` does, for an emoji in a name) arrives as two surrogates, which no file or terminal can
    take. Join the pairs; a lone half is refused."""
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        pass
    try:
        return value.encode("utf-16-le", "surrogatepass").decode("utf-16-le")
    except UnicodeDecodeError:
        raise _Refused("value:a \\u escape that is half of a character (a lone surrogate)",
                       mark.line + 1, mark.column + 1) from None


def parse_yaml(text: str, path: str) -> Any:
    """Round-trip parse (keeps line numbers for messages). Raises CONFIG_ERROR on malformed YAML, on YAML
    anchors/aliases, on nesting deeper than MAX_DEPTH and on values that cannot be read."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    yaml = YAML(typ="rt")
    yaml.Composer, yaml.Constructor = _safe_yaml_classes()
    fix = "fix the file (indentation and quoting are the usual causes), then run `sig doctor`"
    try:
        return yaml.load(text)
    except _Refused as found:
        where = f"line {found.line}, column {found.column}"
        if found.what == "nesting":
            raise SigError(ErrorCode.CONFIG_ERROR,
                           f"{path} is nested too deeply ({where}): more than {MAX_DEPTH} levels of lists and "
                           "mappings", fix) from None
        if found.what.startswith("value:"):
            raise SigError(ErrorCode.CONFIG_ERROR,
                           f"{path} is not valid YAML ({where}): a value that cannot be read "
                           f"({found.what[6:]})", fix) from None
        raise SigError(
            ErrorCode.CONFIG_ERROR,
            f"{path} uses {found.what} ({where}): YAML anchors (&name) and "
            "aliases (*name, <<: *name) are not accepted in sig's files",
            "write the repeated values out in full at each place, then run `sig doctor`",
        ) from None
    except RecursionError:  # a last resort: MAX_DEPTH keeps real input far from Python's stack limit
        raise SigError(ErrorCode.CONFIG_ERROR, f"{path} is nested too deeply", fix) from None
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SigError(
            ErrorCode.CONFIG_ERROR,
            f"{path} is not valid YAML{where}: {problem}",
            fix,
        ) from None


def parse_config(text: str, path: str) -> Config:
    """The Config of YAML `text`; CONFIG_ERROR listing every problem."""
    from .schema import normalise

    doc = parse_yaml(text, path)
    data, errors, warnings = normalise(doc)
    if errors:
        listing = "\n".join(f"  - {e}" for e in errors)
        raise SigError(
            ErrorCode.CONFIG_ERROR,
            f"{path} has {len(errors)} problem{'s' if len(errors) != 1 else ''}:\n{listing}",
            "fix the entries above, then run `sig doctor` to check",
        )
    return Config(data, path, warnings)


def load_config(path: str | None = None) -> tuple[Config, bool]:
    """The config, and whether it was freshly parsed (so the caller can show its warnings once)."""
    path = path or paths.config_path()
    key = stat_key(path)
    if key is None:
        if os.path.lexists(path):
            raise SigError(
                ErrorCode.CONFIG_ERROR, f"cannot read {path}", f"check that {path} exists and is readable"
            )
        raise missing_config_error(path)
    _check_config_file(path)
    cached = _read_cache(path, key)
    if cached is not None:
        return cached, False
    fresh = "restore it (a `sig init --force` leaves the previous one as config.yaml.bak), or run `sig init " \
        "--force` for a new one (stored credentials are kept)"
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except (OSError, UnicodeDecodeError) as exc:
        if isinstance(exc, OSError):
            raise SigError(ErrorCode.CONFIG_ERROR, f"cannot read {path}: {exc.strerror}",
                           f"check that {path} is a file you can read") from None
        raise SigError(ErrorCode.CONFIG_ERROR, f"{path} is not text (not UTF-8): it is damaged",
                       fresh) from None
    if not text.strip():
        raise SigError(ErrorCode.CONFIG_ERROR, f"{path} is empty", fresh)
    config = parse_config(text, path)
    if stat_key(path) == key:
        _write_cache(path, key, config)
    return config, True


def open_store(config: Config | None, log: Callable[[str], None] | None = None, *,
               credentials_dir: str | None = None, key_path: str | None = None) -> CredentialStore:
    """The credential store a config names (storage.credentialsDir), sealed with the key file of SIG_HOME:
    the one place a CredentialStore is built (cli/app.py's App, the watch loop, sync, doctor, init, the
    SDK). `credentials_dir` / `key_path` replace the config's and SIG_HOME's (init before a config exists,
    an SDK client on another sig folder)."""
    from ..store.credentials import CredentialStore

    if credentials_dir is None:
        if config is None:
            raise ValueError("open_store needs a config or a credentials_dir")
        credentials_dir = config.credentials_dir
    return CredentialStore(credentials_dir, key_path or paths.key_path(), log)
