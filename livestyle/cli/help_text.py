"""Help text that reads as written in an 80-column terminal.

Typer's markdown help re-flows paragraphs, so a long example command wraps in the middle of an
option. :func:`examples` lays each command out in a code block instead (not re-flowed), broken
at option boundaries with shell continuations, so every line can be copied and run as printed.
"""

from __future__ import annotations

import shlex

__all__ = ["WIDTH", "examples", "wrap_command"]

WIDTH = 74
"""Longest example line: 80 columns minus the help panel's indent and the code block's."""


def _groups(command: str) -> list[str]:
    """The command's words with each option joined to its value (``--sink out.mp4``); quoted
    words keep their quotes. A trailing ``# comment`` is its own group."""
    comment = ""
    if "  #" in command:
        command, comment = command.split("  #", 1)
        comment = "# " + comment.strip()
    lexer = shlex.shlex(command, posix=False, punctuation_chars=False)
    lexer.whitespace_split = True
    words = list(lexer)
    groups: list[str] = []
    for word in words:
        if groups and groups[-1].startswith("-") and " " not in groups[-1] and not word.startswith("-"):
            groups[-1] += " " + word
        else:
            groups.append(word)
    return groups + ([comment] if comment else [])


def wrap_command(command: str, width: int = WIDTH) -> str:
    """``command`` on lines of at most ``width`` columns, continued with `` \\`` and a 4-space indent."""
    lines: list[str] = []
    line = ""
    for group in _groups(command):
        sep = "  " if group.startswith("#") else " "
        candidate = f"{line}{sep}{group}" if line else group
        if line and len(candidate) + 2 > width and not group.startswith("#"):
            lines.append(line + " \\")
            line = "    " + group
        else:
            line = candidate
    lines.append(line)
    return "\n".join(lines)


def examples(*commands: str, notes: str = "") -> str:
    """A help section: ``Examples:``, the commands in one code block (a blank line between them),
    then ``notes`` as a normal paragraph."""
    block = "\n\n".join(wrap_command(c) for c in commands)
    return f"Examples:\n\n```\n{block}\n```\n" + (f"\n{notes.strip()}\n" if notes else "")
