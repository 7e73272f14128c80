"""JSON API under /api/: Hugging Face compatible endpoints (hf.py) and paperfeed's own (v1.py)."""
