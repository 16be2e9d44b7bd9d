"""What the harness's command line tools share: the end of a ``main`` (the result, or one error line),
and printing measurements one by one as they come."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any


def finish(
    prog: str,
    action: Callable[[], object],
    errors: tuple[type[Exception], ...],
    *,
    print_json: bool = False,
    label: str = "error: ",
    code: int = 2,
) -> int:
    """Run ``action`` and return exit status 0, first printing its result as JSON if ``print_json``; on
    one of the expected ``errors``: the line ``<prog>: <label><message>`` on stderr, and ``code``."""
    try:
        result = action()
    except errors as error:
        print(f"{prog}: {label}{error}", file=sys.stderr)
        return code
    if print_json:
        print(json.dumps(result, indent=2))
    return 0


def print_rows(rows: Iterable[Any], show: Callable[[Any], str], json_path: Path | None) -> None:
    """Print each of ``rows`` as ``show`` words it, as soon as it is made (``rows`` may be a generator
    of slow measurements), then, with ``json_path``, write them all there as a JSON list."""
    made = []
    for row in rows:
        made.append(row)
        print(show(row), flush=True)
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(made, indent=1) + "\n")
