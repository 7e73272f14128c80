"""Abstract snippets with the matched words highlighted, as safe HTML."""

from __future__ import annotations

import html
from collections.abc import Callable
from itertools import accumulate, groupby

SNIPPET_WORDS = 40  # about two lines on the results page
PREFIX = 2  # letters a word must share with a matched stem before it is analysed
_OPENERS = "([{\"'"  # stripped before the prefix check: '(Transformers' starts like 'transform'


class Highlighter:
    """Snippets for one result page: each distinct word is analysed once for the whole page
    (the analyser call is the costly part; a page's abstracts share most of their words)."""

    def __init__(self, matched: set[str], analyze: Callable[[str], list[str]]) -> None:
        self.matched = matched
        self.analyze = analyze
        # Stems nearly always share their first letters with the word, so only words starting
        # like a matched stem are analysed: ~20x fewer analyser calls.
        self.heads = {t[:PREFIX] for t in matched}
        self.seen: dict[str, bool] = {}  # lowercased word -> contains a matched stem

    def _hits(self, text: str, count: int) -> list[bool]:
        if not self.matched:
            return [False] * count
        lowered = text.lower().split()  # lower() never adds or removes whitespace
        seen, heads, matched = self.seen, self.heads, self.matched
        for word in set(lowered).difference(seen):
            key = word.lstrip(_OPENERS)
            seen[word] = key[:PREFIX] in heads and any(t in matched for t in self.analyze(key))
        return [seen[w] for w in lowered]

    def snippet(self, text: str) -> str:
        """The densest SNIPPET_WORDS-word window of `text`, escaped, matched words in <mark>."""
        words = (text or "").split()  # the same words as the regex \S+
        if not words:
            return ""
        hits = self._hits(text, len(words))
        start = 0
        if len(words) > SNIPPET_WORDS and any(hits):
            sums = [0, *accumulate(hits)]
            counts = [
                sums[i + SNIPPET_WORDS] - sums[i] for i in range(len(words) - SNIPPET_WORDS + 1)
            ]
            start = counts.index(max(counts))  # the first densest window
            start = max(0, start - 3) if start else 0  # a little context before the first match
        stop = min(len(words), start + SNIPPET_WORDS)
        # Runs of unmarked words are escaped in one call (escaping keeps the spaces).
        out: list[str] = []
        for marked, run in groupby(range(start, stop), key=hits.__getitem__):
            if marked:
                out.extend(f"<mark>{html.escape(words[i])}</mark>" for i in run)
            else:
                out.append(html.escape(" ".join(words[i] for i in run)))
        prefix = "… " if start > 0 else ""
        suffix = " …" if stop < len(words) else ""
        return prefix + " ".join(out) + suffix


def snippet_html(text: str, matched: set[str], analyze: Callable[[str], list[str]]) -> str:
    """One snippet (a page of them: use one Highlighter, which shares the analysis)."""
    return Highlighter(matched, analyze).snippet(text)
