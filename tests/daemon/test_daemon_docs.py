"""docs/api.md's error table is the table in pkcard/error_codes.py."""

from __future__ import annotations

from pathlib import Path

from pkcard.error_codes import ERROR_CODES

API_DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def test_error_table_matches_the_code() -> None:
    rows = {
        cells[2].strip("` "): cells[1].strip()
        for line in API_DOC.read_text().splitlines()
        if line.startswith("| ") and (cells := line.split("|")) and len(cells) == 7
        and cells[2].strip().startswith("`")
    }
    expected = {row.reason.value: row.code.name for row in ERROR_CODES}
    assert rows == expected, "update docs/api.md's error table:\n" + "\n".join(
        f"| {row.code.name} | `{row.reason.value}` | "
        f"{', '.join(f'`{key}`' for key in row.metadata_keys) or '—'} | "
        f"`{row.error_type.__name__}` | {row.when} |"
        for row in ERROR_CODES
    )
