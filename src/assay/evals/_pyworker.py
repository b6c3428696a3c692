"""The python-assertion worker: reads one JSON request a line, answers one JSON line.

Run by assay as ``python -I _pyworker.py`` under resource limits; it imports
nothing of assay. A request is ``{"code": ..., "file": ..., "output": ...,
"context": ...}``: one line of ``code`` is an expression over ``output`` and
``context``; several lines are a function body that returns; a ``file`` defines
``get_assert(output, context)``.
"""

import json
import re
import sys
import textwrap
import traceback
from typing import Any

_functions: dict[str, Any] = {}


def _run(request: dict[str, Any]) -> Any:
    output, context = request["output"], request["context"]
    env = {"output": output, "context": context, "json": json, "re": re}
    if request.get("file"):
        path = request["file"]
        if path not in _functions:
            scope = {"__name__": "assay_assertion", "__file__": path}
            with open(path, encoding="utf-8") as f:
                exec(compile(f.read(), path, "exec"), scope)
            name = request.get("function") or "get_assert"
            if name not in scope:
                raise ValueError(f"{path} defines no {name}(output, context)")
            _functions[path] = scope[name]
        return _functions[path](output, context)
    code = request["code"].strip()
    if "\n" not in code:
        return eval(code, env)
    body = "def _assertion(output, context):\n" + textwrap.indent(code, "    ")
    exec(body, env)
    return env["_assertion"](output, context)


def main() -> None:
    answers = sys.stdout
    sys.stdout = sys.stderr  # what assertion code prints must never read as an answer
    for line in sys.stdin:
        try:
            answer: dict[str, Any]
            value = _run(json.loads(line))
            if isinstance(value, bool) or value is None:
                answer = {"pass": bool(value), "score": 1.0 if value else 0.0}
            elif isinstance(value, (int, float)):
                answer = {"score": float(value)}
            elif isinstance(value, dict):
                answer = {
                    "pass": bool(value.get("pass", value.get("pass_", False))),
                    "score": float(value.get("score", 1.0 if value.get("pass") else 0.0)),
                    "reason": str(value.get("reason", "")),
                }
            else:
                answer = {"error": f"returned {type(value).__name__}; want bool, number or dict"}
        except BaseException as e:
            frames = [f for f in traceback.extract_tb(e.__traceback__) if f.filename != __file__]
            where = f" (line {frames[-1].lineno})" if frames else ""
            answer = {"error": f"{type(e).__name__}: {e}{where}"}
        answers.write(json.dumps(answer) + "\n")
        answers.flush()


if __name__ == "__main__":
    main()
