"""Diagnostics: errors that carry a position in a `.iot` file and render like a compiler's.

Every problem the language layer finds, syntax or semantic, becomes a `Diagnostic` with a
`SourcePos`; `IotError` carries one or more of them so a single run can report several mistakes.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyiot.errors import PyiotError

# The widest source excerpt shown under a message; a longer line is cut around the caret.
_SHOWN_WIDTH = 100


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
        """Format as `FILE:LINE:COL: error: MESSAGE`, then the source line and a caret.

        Without `source`, the line is read from the file only when it is a `.iot` file (never
        quote a foreign file an import named, nor wait on a device), through the same checks
        as any source.
        """
        head = f"{self.pos}: {self.severity}: {self.message}"
        if source is None:
            if not self.pos.file.endswith(".iot"):
                return head
            from pyiot.lang.source import read_source

            try:
                source = read_source(self.pos.file)
            except OSError:
                return head
        # Lines as positions count them: split at "\n" only (a form feed or a lone "\r" is
        # whitespace inside a line for the parser, but `splitlines` would break there).
        lines = source.split("\n")
        if not 1 <= self.pos.line <= len(lines):
            return head
        text = lines[self.pos.line - 1].rstrip("\r").expandtabs(1)
        offset = max(self.pos.column, 1) - 1
        if len(text) > _SHOWN_WIDTH:
            # A window around the column, marked as cut, so one huge line stays one screen line.
            start = max(0, min(offset - _SHOWN_WIDTH // 2, len(text) - _SHOWN_WIDTH))
            end = start + _SHOWN_WIDTH
            prefix = "..." if start else ""
            text = prefix + text[start:end] + ("..." if end < len(text) else "")
            offset = offset - start + len(prefix)
        caret = " " * offset + "^"
        return f"{head}\n    {text}\n    {caret}"


class IotError(PyiotError):
    """Raised when a `.iot` file cannot be used; holds every diagnostic found."""

    what = "unusable .iot file"

    def __init__(
        self,
        diagnostics: list[Diagnostic],
        source: str | None = None,
        path: str | None = None,
        sources: dict[str, str] | None = None,
    ):
        self.diagnostics = sorted(diagnostics, key=lambda d: (d.pos.file, d.pos.line, d.pos.column))
        self.source = source
        # `source` is the text of `path`; `sources` holds the text of imported .iot files.
        # Diagnostics in other files show no source line unless theirs is a .iot file.
        self.path = path
        self.sources = dict(sources or {})
        super().__init__(self.diagnostics[0].message if self.diagnostics else "invalid file")

    @property
    def line(self) -> int:
        return self.diagnostics[0].pos.line

    @property
    def column(self) -> int:
        return self.diagnostics[0].pos.column

    def render(self) -> str:
        """All diagnostics, each with its source line and caret."""
        return "\n".join(d.render(self._source_of(d.pos.file)) for d in self.diagnostics)

    def _source_of(self, file: str) -> str | None:
        if self.path in (None, file):
            return self.source
        return self.sources.get(file)

    def __str__(self) -> str:
        first = self.diagnostics[0]
        return f"{first.pos}: {first.severity}: {first.message}"
