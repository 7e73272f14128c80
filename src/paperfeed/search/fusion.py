"""Combining the keyword and the semantic ranking into one list (pure functions)."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class FusionParams:
    """How two rankings become one. Defaults were tuned on the SciFact *train* split only
    (bench/search_quality.py --tune); see README ## Search for the numbers."""

    # Grid on SciFact train (809 queries), every candidate scored by both sides
    # (service.hybrid_lists): convex beats RRF, keyword weight 0.45. With the semantic side
    # rescored by sentences (queries of 5+ words), 0.425 (train nDCG@10 0.7468 vs 0.7457);
    # a few title words keep 0.45 (bench/known_item.py hybrid MRR@10 0.782 vs 0.770 at 0.425).
    method: str = "convex"  # "convex" (normalised scores) | "rrf" (reciprocal-rank fusion)
    rrf_k: float = 60.0  # RRF damping constant (Cormack et al. 2009 use 60)
    keyword_weight: float = 0.45  # share of the keyword side, 0..1
    semantic_floor: float = 0.15  # cosine below which a semantic-only hit is noise
    sentence_keyword_weight: float = 0.425  # keyword_weight when the semantic side was
    # rescored by sentences (with_sentences)

    def for_sentences(self) -> FusionParams:
        """These parameters for a semantic side rescored by sentences."""
        return replace(self, keyword_weight=self.sentence_keyword_weight)


# A semantic candidate's score: its paper vector's cosine and its best sentence's, weighted
# 1 : SENTENCE_WEIGHT (bench/search_quality.py --tune, SciFact train, each at its best keyword
# weight: nDCG@10 0.7441 / 0.7457 / 0.7468 / 0.7463 / 0.7428 for 0.5 / 1 / 1.5 / 2 / 3).
SENTENCE_WEIGHT = 1.5


def with_sentences(
    semantic: list[tuple[int, float]], best_sentence: dict[int, float]
) -> list[tuple[int, float]]:
    """The semantic ranking rescored: (cosine + w * best sentence cosine) / (1 + w) for papers
    with sentence vectors, the cosine alone for the others (title-only papers)."""
    w = SENTENCE_WEIGHT
    scored = [
        (pid, (s + w * best_sentence[pid]) / (1 + w) if pid in best_sentence else s)
        for pid, s in semantic
    ]
    return sorted(scored, key=lambda kv: -kv[1])


def rrf(
    keyword: list[tuple[int, float]], semantic: list[tuple[int, float]], p: FusionParams
) -> list[tuple[int, float]]:
    """Weighted reciprocal-rank fusion: sum of w / (k + rank) over the lists a paper is in."""
    scores: dict[int, float] = {}
    for rank, (pid, _) in enumerate(keyword, start=1):
        scores[pid] = scores.get(pid, 0.0) + p.keyword_weight / (p.rrf_k + rank)
    for rank, (pid, _) in enumerate(semantic, start=1):
        scores[pid] = scores.get(pid, 0.0) + (1 - p.keyword_weight) / (p.rrf_k + rank)
    return sorted(scores.items(), key=lambda kv: -kv[1])


def convex(
    keyword: list[tuple[int, float]], semantic: list[tuple[int, float]], p: FusionParams
) -> list[tuple[int, float]]:
    """w * BM25/max(BM25) + (1-w) * min-max-scaled cosine (Bruch et al. 2023, 'convex').
    A paper missing from a list scores 0 on that side; search completes both lists first."""
    scores: dict[int, float] = {}
    if keyword:
        top = max(s for _, s in keyword) or 1.0
        for pid, s in keyword:
            scores[pid] = p.keyword_weight * s / top
    if semantic:
        hi, lo = semantic[0][1], semantic[-1][1]
        span = (hi - lo) or 1.0
        for pid, s in semantic:
            scores[pid] = scores.get(pid, 0.0) + (1 - p.keyword_weight) * (s - lo) / span
    return sorted(scores.items(), key=lambda kv: -kv[1])


def fuse(
    keyword: list[tuple[int, float]], semantic: list[tuple[int, float]], p: FusionParams
) -> list[tuple[int, float]]:
    """One ranking from both; semantic hits under the floor only count where keyword agrees."""
    keyword_ids = {pid for pid, _ in keyword}
    semantic = [(pid, s) for pid, s in semantic if s >= p.semantic_floor or pid in keyword_ids]
    if not semantic:
        return list(keyword)
    if not keyword:
        return list(semantic)
    return convex(keyword, semantic, p) if p.method == "convex" else rrf(keyword, semantic, p)
