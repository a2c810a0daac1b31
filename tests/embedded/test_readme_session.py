"""The README's session snippet runs as written against ``pkcardd --simulated``."""

from __future__ import annotations

import contextlib
import io
import re

from embeddedrig import ROOT, EmbeddedDaemon

README_DIR = ".run/pkcardd"


def readme_snippet() -> str:
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.DOTALL)
    found = [block for block in blocks if "IssueChallenge" in block]
    assert len(found) == 1, "README.md must hold exactly one session snippet"
    return str(found[0])


def test_readme_session_snippet(daemon: EmbeddedDaemon) -> None:
    source = readme_snippet()
    assert README_DIR in source
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(source.replace(README_DIR, str(daemon.socket_dir)),
                     "README.md", "exec"), {})
    assert out.getvalue().split() == ["PK0000100001", "['I002']"]
