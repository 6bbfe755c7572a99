"""validateRule: a JavaScript expression over the probe's response, run in a sandboxed QuickJS.

The rule sees one thing of ours: a deep-frozen `res = {status, body, headers}` (body JSON-parsed when it
parses, else the raw text; headers a lower-case map). Every evaluation gets a fresh engine with a memory,
CPU-time and stack limit and no host bindings (no require/process/fetch/std/os). Anything that goes wrong
(syntax error, exception, timeout, out of memory) counts as "not valid": the rule fails closed.

The rule must be a single expression. It is compiled inside two wrappers whose closing brackets differ,
`(...)` and `[...]`: text that tries to close the first wrapper early to run statements after it
(`1); while(true){} (1`) cannot be balanced in both, so it is rejected before anything runs.

QuickJS's time limit is only checked by the bytecode interpreter: native code such as a backtracking
regular expression (`/^(a+)+$/.test("a".repeat(40) + "b")`) or a huge BigInt power ignores it. So the rule
runs in a short-lived child interpreter (~50 ms) that is killed after WALL_LIMIT_S. When no child can be
started (a frozen build), it runs in a daemon thread instead (QuickJS releases the GIL): the caller still
gets False in time, though a runaway regex keeps that thread busy until the process exits.

`quickjs` is imported inside the functions: it costs ~15 ms and must stay off `sig get`'s path.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MAX_RULE_LENGTH = 512
MEMORY_LIMIT = 32 * 1024 * 1024
TIME_LIMIT_S = 0.5  # CPU seconds per eval (QuickJS's interrupt handler)
WALL_LIMIT_S = 2.0  # the whole evaluation, child start-up included
STACK_LIMIT = 256 * 1024

# The rule goes between a prefix and a suffix; the "\n" before the suffix ends any `//` comment in the rule,
# and the suffixes contain no quote, backtick or `*/` that a string, template or comment could swallow.
_CALL_WRAPPER = ("(function (res) { return !!(\n", "\n); })")
_CHECK_WRAPPER = ("(function (res) { return [\n", "\n]; })")

# Runs after __res_json is set: parse, freeze (iteratively: deep JSON must not overflow the stack), expose.
_SETUP = r"""
(function () {
  var raw = JSON.parse(globalThis.__res_json);
  delete globalThis.__res_json;
  var body = raw.body;
  if (typeof body === "string") {
    try { body = JSON.parse(body); } catch (e) { body = raw.body; }
  }
  var res = {status: raw.status, body: body, headers: raw.headers || {}};
  var todo = [res];
  while (todo.length) {
    var o = todo.pop();
    if (o !== null && typeof o === "object" && !Object.isFrozen(o)) {
      Object.freeze(o);
      var keys = Object.keys(o);
      for (var i = 0; i < keys.length; i++) todo.push(o[keys[i]]);
    }
  }
  Object.defineProperty(globalThis, "res", {value: res, writable: false, enumerable: true,
                                            configurable: false});
})();
"""


def _too_long(rule: str) -> bool:
    # Length in UTF-16 code units, as JavaScript's rule.length (the original's check).
    return len(rule) > MAX_RULE_LENGTH and len(rule.encode("utf-16-le")) // 2 > MAX_RULE_LENGTH


def _new_context() -> Any:
    import quickjs

    ctx = quickjs.Context()
    ctx.set_memory_limit(MEMORY_LIMIT)
    ctx.set_time_limit(TIME_LIMIT_S)
    ctx.set_max_stack_size(STACK_LIMIT)
    return ctx


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


def _error_name(exc: BaseException) -> str:
    """The JS error class only (never the message: a rule may `throw res.body.token`)."""
    first = _first_line(exc)
    head = first.split(":", 1)[0].strip()
    if first.startswith("InternalError: interrupted"):
        return "timed out"
    if first.startswith("InternalError: out of memory"):
        return "out of memory"
    if first.startswith("InternalError: stack overflow"):
        return "stack overflow"
    if head.isidentifier() and head.endswith("Error"):
        return head
    return "exception"


def _precheck(rule: object) -> str | None:
    """The checks that need no engine."""
    if not isinstance(rule, str):
        return "validateRule must be a string"
    if _too_long(rule):
        return f"validateRule is longer than {MAX_RULE_LENGTH} characters"
    if "\0" in rule:
        return "validateRule contains a NUL character"
    if not rule.strip():
        return "validateRule is empty"
    return None


def _check(ctx: Any, rule: str) -> str | None:
    """Compile (never run) the rule in both wrappers in `ctx`; the first error message, or None."""
    problem = _precheck(rule)
    if problem is not None:
        return problem
    for prefix, suffix in (_CALL_WRAPPER, _CHECK_WRAPPER):
        try:
            ctx.eval(prefix + rule + suffix)  # a function expression: parsed, its body not run
        except Exception as exc:
            if (prefix, suffix) == _CALL_WRAPPER:
                return _first_line(exc)
            return "SyntaxError: validateRule must be a single expression"
    return None


def rule_syntax_error(rule: str) -> str | None:
    """A short message when the rule is not one valid JS expression (or too long); None when it is fine."""
    try:
        return _check(_new_context(), rule)
    except ImportError:
        return "cannot check validateRule: the quickjs package is not installed"
    except Exception as exc:  # engine setup failure: say so rather than crash config checks
        return f"cannot check validateRule: {type(exc).__name__}"


def _evaluate_here(rule: str, res: dict[str, Any]) -> tuple[bool, str]:
    """Check and run the rule in a fresh engine in this process. Never raises."""
    import json

    try:
        ctx = _new_context()
        problem = _check(ctx, rule)
        if problem is not None:
            return False, f"validateRule rejected ({problem})"
        payload = {
            "status": res.get("status"),
            "body": res.get("body"),
            "headers": {str(k).lower(): str(v) for k, v in (res.get("headers") or {}).items()},
        }
        ctx.set("__res_json", json.dumps(payload))  # ASCII-only JSON: safe for any str contents
        ctx.eval(_SETUP)
        prefix, suffix = _CALL_WRAPPER
        result = ctx.eval(prefix + rule + suffix + "(globalThis.res)")
    except ImportError:
        return False, "validateRule failed (the quickjs package is not installed)"
    except Exception as exc:
        return False, f"validateRule failed ({_error_name(exc)})"
    if result is True:
        return True, "validateRule true"
    return False, "validateRule false"


def _worker_main() -> None:
    """The child's side: {"rule", "res"} as JSON on stdin, [ok, reason] as JSON on stdout."""
    import json
    import sys

    try:
        import resource

        cpu = int(WALL_LIMIT_S) + 1
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    except (ImportError, ValueError, OSError):
        pass
    try:
        request = json.loads(sys.stdin.buffer.read())
        ok, reason = _evaluate_here(str(request["rule"]), dict(request["res"]))
    except Exception as exc:
        ok, reason = False, f"validateRule failed ({type(exc).__name__})"
    sys.stdout.write(json.dumps([ok, reason]))
    sys.stdout.flush()


_WORKER = ("import sys\nsys.path.extend({paths!r})\n"
           "from sigcli.rules.jsrule import _worker_main\n_worker_main()\n")


def _child_command() -> list[str] | None:
    """python -I -S -c ... with sigcli's and quickjs's directories on its path; None when not possible."""
    import os
    import sys

    if not sys.executable or getattr(sys, "frozen", False):
        return None
    from importlib.util import find_spec

    try:
        spec = find_spec("_quickjs")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin:
        return None
    here = os.path.dirname(os.path.abspath(__file__))
    paths = [os.path.dirname(os.path.dirname(here)), os.path.dirname(spec.origin)]
    return [sys.executable, "-I", "-S", "-c", _WORKER.format(paths=paths)]


def _evaluate_in_child(command: list[str], rule: str, res: dict[str, Any]) -> tuple[bool, str]:
    import json
    import subprocess

    try:
        payload = json.dumps({"rule": rule, "res": res}).encode()
    except (TypeError, ValueError):
        return False, "validateRule failed (response not serialisable)"
    try:
        proc = subprocess.run(command, input=payload, capture_output=True, timeout=WALL_LIMIT_S,
                              close_fds=True)
    except subprocess.TimeoutExpired:  # run() has killed and reaped the child
        return False, "validateRule failed (timed out)"
    except OSError as exc:
        return False, f"validateRule failed (cannot start the engine: {exc.strerror or type(exc).__name__})"
    try:
        ok, reason = json.loads(proc.stdout)
    except (ValueError, TypeError):
        if proc.returncode == 1 and not proc.stdout:
            # The child could not import us or quickjs (an unusual install): run here instead.
            return _evaluate_in_thread(rule, res)
        return False, "validateRule failed (the engine stopped)"
    return ok is True, str(reason)[:200]


def _evaluate_in_thread(rule: str, res: dict[str, Any]) -> tuple[bool, str]:
    import threading

    box: list[tuple[bool, str]] = []
    worker = threading.Thread(target=lambda: box.append(_evaluate_here(rule, res)), name="sig-validate-rule",
                              daemon=True)
    worker.start()
    worker.join(WALL_LIMIT_S)
    return box[0] if box else (False, "validateRule failed (timed out)")


def evaluate(rule: str, res: dict[str, Any]) -> tuple[bool, str]:
    """(verdict, short non-secret reason). Never raises, never hangs: every failure is (False, why)."""
    problem = _precheck(rule)
    if problem is not None:
        return False, f"validateRule rejected ({problem})"
    command = _child_command()
    if command is None:
        return _evaluate_in_thread(rule, res)
    return _evaluate_in_child(command, rule, res)
