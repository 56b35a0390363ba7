"""Limits on what a `.iot` file may say: beyond them a value is a mistake, not a wish.

Each is a FILE:LINE:COL error at the value, so a typo (or a hostile file) never reaches the
runtime or a generated driver as an infinite timeout, a number JSON readers cannot hold, or a
tree too deep to walk. docs/language.md ("Limits") lists them for users.
"""

from __future__ import annotations

# Numbers: the largest whole number a JSON reader holds exactly (a double's 53-bit mantissa);
# the shadow is JSON, so a bound or value beyond it could not be reported faithfully.
MAX_NUMBER = 2**53
# Characters in one number as written (digits and point); 2**53 has 16 digits.
MAX_NUMBER_CHARS = 40
# Durations (timeout, backoff, poll every, after): a week is already more than any device needs.
MAX_SECONDS = 7 * 24 * 3600.0
# `retries N`.
MAX_RETRIES = 100
# Nesting of the syntax tree (a `convert` expression's parentheses and unary minuses count).
MAX_DEPTH = 60
# Nesting of groups in one /regex/.
MAX_REGEX_DEPTH = 100
# A file read as `.iot` source (the one given and each import).
MAX_FILE_BYTES = 1_000_000
# Imports of imports of ...
MAX_IMPORT_DEPTH = 32
# Width or precision in a `{value:...}` format field: "{value:999999999d}" would build a
# gigabyte of padding per command.
MAX_FORMAT_WIDTH = 1000
