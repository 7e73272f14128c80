"""Abstract snippets with the matched words highlighted, as safe HTML."""

from __future__ import annotations

import html
import re
from collections.abc import Callable

SNIPPET_WORDS = 40  # about two lines on the results page
PREFIX = 2  # letters a word must share with a matched stem before it is analysed
_WORD = re.compile(r"\S+")


def snippet_html(text: str, matched: set[str], analyze: Callable[[str], list[str]]) -> str:
    """The densest SNIPPET_WORDS-word window of `text`, escaped, matched words in <mark>."""
    words = _WORD.findall(text or "")
    if not words:
        return ""
    # Stems nearly always share their first letters with the word, so only words starting like
    # a matched stem are analysed (each distinct word once): ~20x fewer analyser calls.
    heads = {t[:PREFIX] for t in matched}
    seen: dict[str, bool] = {}
    hits = []
    for w in words:
        key = w.lower().lstrip("([{\"'")
        if key not in seen:
            seen[key] = key[:PREFIX] in heads and any(t in matched for t in analyze(w))
        hits.append(seen[key])
    start = 0
    if any(hits) and len(words) > SNIPPET_WORDS:
        best = count = sum(hits[:SNIPPET_WORDS])
        for i in range(1, len(words) - SNIPPET_WORDS + 1):
            count += hits[i + SNIPPET_WORDS - 1] - hits[i - 1]
            if count > best:
                best, start = count, i
        start = max(0, start - 3) if start else 0  # a little context before the first match
    window = range(start, min(len(words), start + SNIPPET_WORDS))
    out = []
    for i in window:
        escaped = html.escape(words[i])
        out.append(f"<mark>{escaped}</mark>" if hits[i] else escaped)
    prefix = "… " if start > 0 else ""
    suffix = " …" if window.stop < len(words) else ""
    return prefix + " ".join(out) + suffix
