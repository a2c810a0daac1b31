"""Every SQL statement of the backend is a fixed text: values travel as bound parameters.

Scans the source of backend/ for statements built with f-strings, ``%`` or
``.format()`` (the way values end up inside SQL), in any ``execute`` call and
in any string that reads like SQL. A new statement that interpolates fails here.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SQL_WORDS = re.compile(r"\b(SELECT|INSERT INTO|UPDATE|DELETE FROM|WHERE|CREATE TABLE|ALTER TABLE"
                       r"|VALUES|SET)\b")
EXECUTE = {"execute", "executemany", "executescript"}


def _text_parts(node: ast.AST) -> str:
    return " ".join(n.value for n in ast.walk(node)
                    if isinstance(n, ast.Constant) and isinstance(n.value, str))


def _interpolated(node: ast.AST) -> bool:
    for sub in ast.walk(node):
        if isinstance(sub, ast.JoinedStr):
            return True
        if isinstance(sub, ast.BinOp) and isinstance(sub.op, ast.Mod):
            return True
        if isinstance(sub, ast.Call) and isinstance(sub.func, ast.Attribute) \
                and sub.func.attr == "format":
            return True
    return False


def findings(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and node.func.attr in EXECUTE and node.args and _interpolated(node.args[0]):
            found.append(f"{path.name}:{node.lineno}: {node.func.attr} of a built string")
        if isinstance(node, ast.JoinedStr) and SQL_WORDS.search(_text_parts(node)):
            found.append(f"{path.name}:{node.lineno}: an f-string that reads like SQL")
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod) \
                and isinstance(node.left, ast.Constant) and isinstance(node.left.value, str) \
                and SQL_WORDS.search(node.left.value):
            found.append(f"{path.name}:{node.lineno}: %-formatted SQL")
    return found


def backend_sources() -> list[Path]:
    return sorted(p for p in (ROOT / "backend").glob("*.py") if p.name != "pg_harness.py")


def test_backend_sql_uses_bound_parameters_only() -> None:
    sources = backend_sources()
    assert {p.name for p in sources} >= {"registry.py", "database.py", "migrations.py"}
    assert [f for p in sources for f in findings(p)] == []


def test_the_scan_catches_interpolation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        'def f(conn, serial, n):\n'
        '    conn.execute(f"SELECT * FROM cards WHERE serial = \'{serial}\'")\n'
        '    conn.execute("DELETE FROM challenges WHERE expires < %d" % n)\n'
        '    conn.execute("UPDATE cards SET status = {}".format(n))\n'
        '    query = f"SELECT status FROM cards WHERE serial = {serial}"\n')
    assert {int(f.split(':')[1]) for f in findings(bad)} == {2, 3, 4, 5}
