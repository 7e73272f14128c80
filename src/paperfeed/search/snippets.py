"""Abstract snippets with the matched words highlighted, as safe HTML."""

from __future__ import annotations

import html
import re
from bisect import bisect_left
from collections.abc import Callable, Sequence

SNIPPET_WORDS = 40  # about two lines on the results page
PREFIX = 2  # letters a word must share with a matched stem before it is analysed
_OPENERS = "([{\"'"  # stripped before the prefix check: '(Transformers' starts like 'transform'


class Highlighter:
    """Snippets for one result page: each distinct word is analysed once for the whole page
    (the analyser call is the costly part; a page's abstracts share most of their words)."""

    def __init__(self, matched: set[str], analyze: Callable[[str], Sequence[str]]) -> None:
        self.matched = matched
        self.analyze = analyze
        # Stems nearly always share their first letters with the word, so only words starting
        # like a matched stem are analysed: ~20x fewer analyser calls. One regex finds them.
        # (A head shorter than PREFIX is a whole word: the stem 'e' of 'e.g.' heads 'e' only.)
        heads = sorted(
            re.escape(h) + ("" if len(h) == PREFIX else "(?![^ ])")
            for h in {t[:PREFIX] for t in matched}
        )
        self.candidates = (
            re.compile(f"(?<![^ ])[{re.escape(_OPENERS)}]*(?:{'|'.join(heads)})") if heads else None
        )
        self.seen: dict[str, bool] = {}  # lowercased word -> contains a matched stem

    def _hit_positions(self, words: list[str]) -> list[int]:
        """Indexes of the words that contain a matched stem."""
        if self.candidates is None:
            return []
        text = " ".join(words).lower()  # lower() never adds or removes whitespace
        seen, matched = self.seen, self.matched
        hits = []
        for m in self.candidates.finditer(text):
            start = m.start()
            end = text.find(" ", start)
            word = text[start:] if end < 0 else text[start:end]
            hit = seen.get(word)
            if hit is None:
                key = word.lstrip(_OPENERS)
                hit = seen[word] = any(t in matched for t in self.analyze(key))
            if hit:
                hits.append(text.count(" ", 0, start))
        return hits

    def snippet(self, text: str) -> str:
        """The densest SNIPPET_WORDS-word window of `text`, escaped, matched words in <mark>."""
        words = (text or "").split()  # the same words as the regex \S+
        if not words:
            return ""
        hits = self._hit_positions(words)
        start = 0
        if len(words) > SNIPPET_WORDS and hits:
            start = _densest_start(hits)
            start = max(0, start - 3) if start else 0  # a little context before the first match
        stop = min(len(words), start + SNIPPET_WORDS)
        # Runs of unmarked words are escaped in one call (escaping keeps the spaces).
        out: list[str] = []
        at = start
        for i in hits[bisect_left(hits, start) : bisect_left(hits, stop)]:
            if i > at:
                out.append(html.escape(" ".join(words[at:i])))
            out.append(f"<mark>{html.escape(words[i])}</mark>")
            at = i + 1
        if at < stop:
            out.append(html.escape(" ".join(words[at:stop])))
        prefix = "… " if start > 0 else ""
        suffix = " …" if stop < len(words) else ""
        return prefix + " ".join(out) + suffix


def _densest_start(hits: list[int]) -> int:
    """The first start of a SNIPPET_WORDS-word window holding the most of the (sorted) hit
    positions. A window's count only rises where a hit enters it, at 0 or at hit - W + 1, so
    only those starts are counted: O(hits · log hits), not a pass over every word."""
    best, best_count = 0, -1
    for start in sorted({0, *(max(0, h - SNIPPET_WORDS + 1) for h in hits)}):
        n = bisect_left(hits, start + SNIPPET_WORDS) - bisect_left(hits, start)
        if n > best_count:
            best, best_count = start, n
    return best


def snippet_html(text: str, matched: set[str], analyze: Callable[[str], Sequence[str]]) -> str:
    """One snippet (a page of them: use one Highlighter, which shares the analysis)."""
    return Highlighter(matched, analyze).snippet(text)
