"""The layers hold: no two modules, and no two stages of docs/architecture.png, import each other."""

import runpy
from pathlib import Path

ARCHITECTURE = Path(__file__).resolve().parent.parent / "docs" / "architecture.py"


def test_no_module_or_stage_imports_one_that_imports_it_back(capsys):
    main = runpy.run_path(str(ARCHITECTURE))["main"]
    assert main(["--check"]) == 0, capsys.readouterr().err


def test_the_check_names_a_circle_when_two_modules_import_each_other():
    namespace = runpy.run_path(str(ARCHITECTURE))
    graph = {"ctc/a.py": {"ctc/b.py"}, "ctc/b.py": {"ctc/c.py"}, "ctc/c.py": {"ctc/a.py"}, "ctc/d.py": set()}
    assert namespace["circles"](graph) == [
        ("ctc/a.py", "ctc/b.py"),
        ("ctc/a.py", "ctc/c.py"),
        ("ctc/b.py", "ctc/c.py"),
    ]
