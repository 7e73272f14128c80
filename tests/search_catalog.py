"""A small real catalog for search tests, written straight through the models."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Connection, insert, select, update

from paperfeed.models import Paper, PaperAuthor, PaperCategory, utcnow
from paperfeed.search.query import fold

PAPERS: list[dict[str, Any]] = [
    {
        "arxiv_id": "2405.15738",
        "title": "ConvLLaVA: Hierarchical Backbones as Visual Encoder for Large Multimodal Models",
        "abstract": "High-resolution Large Multimodal Models (LMMs) encounter the challenges of "
        "excessive visual tokens and quadratic visual complexity. We propose ConvLLaVA, which "
        "employs ConvNeXt, a hierarchical backbone, as the visual encoder of LMM.",
        "authors": ["Chunjiang Ge", "Sijie Cheng", "Gao Huang"],
        "categories": ["cs.CV", "cs.CL"],
        "published": dt.date(2024, 5, 24),
        "code_url": "https://github.com/alibaba/conv-llava",
    },
    {
        "arxiv_id": "1706.03762",
        "title": "Attention Is All You Need",
        "abstract": "The dominant sequence transduction models are based on complex recurrent or "
        "convolutional neural networks. We propose a new simple network architecture, the "
        "Transformer, based solely on attention mechanisms, dispensing with recurrence.",
        "authors": ["Ashish Vaswani", "Noam Shazeer", "Niki Parmar"],
        "categories": ["cs.CL", "cs.LG"],
        "published": dt.date(2017, 6, 12),
    },
    {
        "arxiv_id": "2006.11239",
        "title": "Denoising Diffusion Probabilistic Models",
        "abstract": "We present high quality image synthesis results using latent variable models "
        "inspired by considerations from nonequilibrium thermodynamics. Our best results are "
        "obtained by training on a weighted variational bound.",
        "authors": ["Jonathan Ho", "Ajay Jain", "Pieter Abbeel"],
        "categories": ["cs.LG", "stat.ML"],
        "published": dt.date(2020, 6, 19),
        "code_url": "https://github.com/hojonathanho/diffusion",
    },
    {
        "arxiv_id": "1512.03385",
        "title": "Deep Residual Learning for Image Recognition",
        "abstract": "Deeper neural networks are more difficult to train. We present a residual "
        "learning framework to ease the training of networks that are substantially deeper.",
        "authors": ["Kaiming He", "Xiangyu Zhang", "Shaoqing Ren", "Jian Sun"],
        "categories": ["cs.CV"],
        "published": dt.date(2015, 12, 10),
    },
    {
        "arxiv_id": "1810.04805",
        "title": "BERT: Pre-training of Deep Bidirectional Transformers for Language Understanding",
        "abstract": "We introduce a new language representation model called BERT, designed to "
        "pre-train deep bidirectional representations from unlabeled text.",
        "authors": ["Jacob Devlin", "Ming-Wei Chang", "Kenton Lee", "Kristina Toutanova"],
        "categories": ["cs.CL"],
        "published": dt.date(2018, 10, 11),
        "code_url": "https://github.com/google-research/bert",
    },
    {
        "arxiv_id": "2011.13456",
        "title": "Score-Based Generative Modeling through Stochastic Differential Equations",
        "abstract": "Creating noise from data is easy; creating data from noise is generative "
        "modeling. We present a stochastic differential equation that smoothly transforms a "
        "complex data distribution by slowly injecting noise, a diffusion process.",
        "authors": ["Yang Song", "Jascha Sohl-Dickstein"],
        "categories": ["cs.LG"],
        "published": dt.date(2020, 11, 26),
    },
    {
        "arxiv_id": "2312.00752",
        "title": "Mamba: Linear-Time Sequence Modeling with Selective State Spaces",
        "abstract": "Foundation models are almost universally based on the Transformer "
        "architecture. We identify that a key weakness of subquadratic models is their "
        "inability to perform content-based reasoning, and propose selective state spaces.",
        "authors": ["Albert Gu", "Tri Dao"],
        "categories": ["cs.LG"],
        "published": dt.date(2023, 12, 1),
        "code_url": "https://github.com/state-spaces/mamba",
    },
    {
        "arxiv_id": "2401.00001",
        "title": "Graph Neural Networks for Molecular Property Prediction",
        "abstract": "Message passing networks over atoms and bonds predict quantum chemical "
        "properties of small molecules.",
        "authors": ["José Ménard", "Ana Lima"],
        "categories": ["cs.LG", "q-bio.BM"],
        "published": dt.date(2024, 1, 2),
    },
    {
        "arxiv_id": "2402.00002",
        "title": "Photosynthetic efficiency of crop plants under drought",
        "abstract": "We measure chlorophyll fluorescence of wheat leaves in dry summers.",
        "authors": ["Grace Field"],
        "categories": ["q-bio.PE"],
        "published": dt.date(2024, 2, 3),
    },
    {
        "arxiv_id": "2403.00003",
        "title": "Diffusion secrets that moderators hid",
        "abstract": "Denoising diffusion probabilistic models, but hidden from everyone.",
        "authors": ["Hidden Author"],
        "categories": ["cs.LG"],
        "published": dt.date(2024, 3, 4),
        "hidden": True,
    },
]


def add_papers(conn: Connection, papers: list[dict[str, Any]]) -> dict[str, int]:
    """Insert papers (+ author and category rows); returns arxiv_id -> paper id."""
    ids = {}
    for p in papers:
        row = {"hidden": False, "upvotes": 0, **p}
        row["primary_category"] = row["categories"][0] if row["categories"] else None
        pid = conn.execute(insert(Paper).values(**row).returning(Paper.id)).scalar_one()
        for pos, name in enumerate(row["authors"]):
            conn.execute(
                insert(PaperAuthor).values(
                    paper_id=pid, position=pos, name=name, name_key=fold(name)
                )
            )
        for cat in row["categories"]:
            conn.execute(insert(PaperCategory).values(paper_id=pid, category=cat))
        ids[p["arxiv_id"]] = pid
    return ids


def edit_paper(conn: Connection, arxiv_id: str, **values: Any) -> None:
    """Change a paper the way the catalog does: content plus a modified_at bump."""
    conn.execute(
        update(Paper).where(Paper.arxiv_id == arxiv_id).values(**values, modified_at=utcnow())
    )


def paper_id(conn: Connection, arxiv_id: str) -> int:
    return int(conn.execute(select(Paper.id).where(Paper.arxiv_id == arxiv_id)).scalar_one())
