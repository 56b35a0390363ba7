"""Diagnostics: errors that carry a position in a `.iot` file and render like a compiler's.

Every problem the language layer finds, syntax or semantic, becomes a `Diagnostic` with a
`SourcePos`; `IotError` carries one or more of them so a single run can report several mistakes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SourcePos:
    """A 1-based line and column in a source file."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True)
class Diagnostic:
    """One message about one place in a source file."""

    pos: SourcePos
    message: str
    severity: str = "error"

    def render(self, source: str | None = None) -> str:
        """Format as `FILE:LINE:COL: error: MESSAGE`, then the source line and a caret."""
        head = f"{self.pos}: {self.severity}: {self.message}"
        if source is None:
            try:
                source = Path(self.pos.file).read_text(encoding="utf-8")
            except OSError:
                return head
        # Lines as positions count them: split at "\n" only (a form feed or a lone "\r" is
        # whitespace inside a line for the parser, but `splitlines` would break there).
        lines = source.split("\n")
        if not 1 <= self.pos.line <= len(lines):
            return head
        text = lines[self.pos.line - 1].rstrip("\r").expandtabs(1)
        caret = " " * (max(self.pos.column, 1) - 1) + "^"
        return f"{head}\n    {text}\n    {caret}"


class IotError(Exception):
    """Raised when a `.iot` file cannot be used; holds every diagnostic found."""

    def __init__(
        self, diagnostics: list[Diagnostic], source: str | None = None, path: str | None = None
    ):
        self.diagnostics = sorted(diagnostics, key=lambda d: (d.pos.file, d.pos.line, d.pos.column))
        self.source = source
        # `source` is the text of `path`; diagnostics in other (imported) files read theirs.
        self.path = path
        super().__init__(self.diagnostics[0].message if self.diagnostics else "invalid file")

    @property
    def line(self) -> int:
        return self.diagnostics[0].pos.line

    @property
    def column(self) -> int:
        return self.diagnostics[0].pos.column

    def render(self) -> str:
        """All diagnostics, each with its source line and caret."""
        return "\n".join(
            d.render(self.source if self.path in (None, d.pos.file) else None)
            for d in self.diagnostics
        )

    def __str__(self) -> str:
        first = self.diagnostics[0]
        return f"{first.pos}: {first.severity}: {first.message}"
