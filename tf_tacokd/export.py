"""TFLite export of a trained Tacotron2 (the KD student, or any run) with builtin ops only.

The exported graph (signature ``serve``)::

    text_ids      int32   [1, T]                         ids from the text front end (EOS last)
    prenet_masks  float32 [max_steps, 1, sum(prenet)]    dropout masks, see tf_tacokd.lite.prenet_masks
    ->
    mel           float32 [1, frames, n_mels]            after the postnet (normalised log-mel)
    mel_before_postnet float32 [1, frames, n_mels]       the decoder's frames (what it fed back)
    mel_frames    int32   [1]                            frames up to the stop token (= frames)
    stop_probs    float32 [1, steps]                     per decoder step
    finished      int32   [1]                            1 if the stop token fired before max_steps
    alignments    float32 [1, steps, T]                  only with ``alignments=True``

The decoder is the same ``tf.while_loop`` as in training, with fixed-size frame buffers
(``TensorArray(size=max_steps)`` with static element shapes), so the converter lowers it to
builtin WHILE and tensor-list ops; neither LiteRT nor ``tf.lite.Interpreter`` ships the Flex
delegate that a growable buffer would need. The graph goes through
``keras.export.ExportArchive`` and ``TFLiteConverter.from_saved_model``
(``from_concrete_functions(..., trackable_obj=...)`` silently drops Keras 3 weights).

Every export is verified: the converted model decodes several texts of different lengths
in one interpreter (inputs resized between texts) and TF decodes them in lockstep, fed the
frames the TFLite model fed back to itself, with the same prenet masks. float32 must match
within ``export.tolerance`` with identical stop steps, or the export fails (see
:func:`_verify` for why lockstep rather than two free runs).

Example:
    >>> from tf_tacokd.export import export_tflite
    >>> result = export_tflite("runs/kd", "export/kd_en.tflite", quantize="dynamic")  # doctest: +SKIP
    >>> print(result.summary())  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .atomic import write_bytes, write_json
from .lite import build_sidecar, load_interpreter, prenet_masks, sidecar_path

__all__ = ["DEFAULT_TEXTS", "ExportError", "ExportResult", "export_tflite", "serving_function"]

QUANTIZATIONS = ("none", "dynamic", "float16")

DEFAULT_TEXTS = {
    "en": ["Hi.", "The quick brown fox jumps over the lazy dog.",
           "Please call me tomorrow morning before you leave for the office, the train is at seven."],
    "zh": ["你好。", "今天天气很好，我们去公园散步吧。", "火车因为信号故障晚点了四十分钟，我们只能在车站里继续等待。"],
}


class ExportError(RuntimeError):
    """Conversion impossible with builtin ops, or the converted model disagrees with TF."""


@dataclass
class ExportResult:
    """What ``export_tflite`` wrote and measured."""

    path: Path
    sidecar: Path
    size_bytes: int
    quantize: str
    max_steps: int
    verification: list[dict[str, Any]] = field(default_factory=list)
    ops: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def max_abs_diff(self) -> float:
        return max((v["max_abs_diff"] for v in self.verification), default=float("nan"))

    @property
    def stop_steps_agree(self) -> bool:
        return all(v["stop_step_tf"] == v["stop_step_tflite"] for v in self.verification)

    def summary(self) -> str:
        lines = [f"{self.path}: {self.size_bytes / 1e6:.2f} MB, quantize={self.quantize}, "
                 f"max_steps={self.max_steps}, builtin ops only ({len(self.ops)} op types)",
                 "| tokens | frames TFLite | stop step TFLite / TF | lockstep max |mel diff| "
                 "| free-running frames TF | free-running max |mel diff| | TFLite ms | TF ms |",
                 "|---|---|---|---|---|---|---|---|"]
        for v in self.verification:
            lines.append(f"| {v['tokens']} | {v['frames_tflite']} | {v['stop_step_tflite']} / {v['stop_step_tf']} "
                         f"| {v['max_abs_diff']:.2e} | {v['frames_tf_free']} | {v['free_running_max_diff']:.2e} "
                         f"| {v['tflite_ms']:.0f} | {v['tf_ms']:.0f} |")
        lines.append(f"lockstep (TF fed the TFLite model's own frames): stop steps "
                     f"{'identical' if self.stop_steps_agree else 'DIFFER'}, largest mel difference "
                     f"{self.max_abs_diff:.2e}. Free running drifts apart on long texts: float32 rounding "
                     f"grows along the autoregressive loop (TF with/without oneDNN drifts alike).")
        return "\n".join(lines)


def serving_function(model, max_steps: int, alignments: bool = False, alignment_width: int | None = None,
                     window: bool | None = None):
    """The exported computation as a ``tf.function`` with a fixed input signature.

    Args:
        model: a built :class:`~tf_tacokd.model.Tacotron2`.
        max_steps: decoder step bound (the size of the frame buffers and of ``prenet_masks``);
            the ``step_limit`` input lowers it per text (:func:`device_step_limit`).
        alignments: also return the attention weights (needs ``alignment_width``: the
            longest text in tokens the exported model accepts).
        window: attention window (default: the model's ``attention_window`` setting).
    """
    import tensorflow as tf

    m = model.settings
    use_window = m.attention_window if window is None else window
    win = (m.window_backward, m.window_forward) if use_window else None
    width = sum(m.prenet_units)
    collect = ("frames", "stop_logits", "alignments") if alignments else ("frames", "stop_logits")
    if alignments and not alignment_width:
        raise ValueError("alignments=True needs alignment_width (the longest text in tokens)")

    @tf.function(input_signature=[tf.TensorSpec([1, None], tf.int32, name="text_ids"),
                                  tf.TensorSpec([max_steps, 1, width], tf.float32, name="prenet_masks"),
                                  tf.TensorSpec([1], tf.int32, name="step_limit")])
    def serve(text_ids, prenet_masks, step_limit):
        out = model.run(text_ids, max_steps=max_steps, window=win, collect=collect, prenet_masks=prenet_masks,
                        alignment_width=alignment_width if alignments else None, step_limit=step_limit[0])
        result = {"mel": tf.cast(out["mel"], tf.float32), "mel_frames": out["lengths"],
                  "mel_before_postnet": tf.cast(out["mel_before"], tf.float32),
                  "stop_probs": tf.sigmoid(tf.cast(out["stop_logits"], tf.float32)),
                  "finished": tf.cast(out["finished"], tf.int32)}
        if alignments:
            result["alignments"] = tf.cast(out["alignments"], tf.float32)
        return result

    return serve


def _unsupported_ops(message: str) -> list[str]:
    """TF op names a converter error says have no builtin lowering."""
    return sorted(set(re.findall(r"'tf\.(\w+)'", message)))


def _convert(model, serve, quantize: str, workdir: Path) -> bytes:
    import keras
    import tensorflow as tf

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serve", serve)
    saved = workdir / "saved_model"
    archive.write_out(str(saved), verbose=False)
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved), signature_keys=["serve"])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]  # no Flex, ever
    if quantize == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif quantize == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    try:
        return converter.convert()
    except Exception as e:  # ConverterError; its type moved between TF versions
        ops = _unsupported_ops(str(e))
        raise ExportError(
            "TFLite conversion with builtin ops only failed"
            + (f"; these TF ops would need Select TF ops (Flex), which LiteRT does not ship: {', '.join(ops)}"
               if ops else "")
            + f". Converter message (last lines): {' '.join(str(e).splitlines()[-3:])[:800]}") from None


def _op_names(model_bytes: bytes) -> list[str]:
    """Op types in every subgraph (the while loop's body included), from TF's model analyzer."""
    import contextlib
    import io

    import tensorflow as tf

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        tf.lite.experimental.Analyzer.analyze(model_content=model_bytes)
    return sorted(set(re.findall(r"Op#\d+ (\w+)", buf.getvalue())))


def weights_hash(model) -> str:
    """SHA-256 over the model's weights (shapes and values, in order; not the variable paths,
    which Keras numbers per process)."""
    h = hashlib.sha256()
    for w in model.weights:
        value = np.asarray(w.numpy())
        h.update(str(value.shape).encode())
        h.update(np.ascontiguousarray(value).tobytes())
    return h.hexdigest()


def _lockstep_function(model):
    """TF decoding fed, step by step, the frames the TFLite model produced (teacher forcing on
    its own output): per-step outputs must then agree to float32 rounding over the whole
    utterance, whereas two free-running decoders drift apart (see :func:`_verify`)."""
    import tensorflow as tf

    m = model.settings
    win = (m.window_backward, m.window_forward) if m.attention_window else None

    @tf.function(input_signature=[tf.TensorSpec([1, None], tf.int32),
                                  tf.TensorSpec([1, None, model.n_mels], tf.float32),
                                  tf.TensorSpec([None, 1, sum(m.prenet_units)], tf.float32)])
    def lockstep(text_ids, frames, masks):
        out = model.run(text_ids, mel=frames, teacher_prob=1.0, prenet_masks=masks, window=win,
                        collect=("frames", "stop_logits"))
        return {"mel": tf.cast(out["mel"], tf.float32), "mel_before_postnet": tf.cast(out["mel_before"], tf.float32),
                "stop_probs": tf.sigmoid(tf.cast(out["stop_logits"], tf.float32))}

    return lockstep


def _stop_step(stop_probs: np.ndarray, threshold: float, min_steps: int) -> int | None:
    """1-based decoder step at which the stop token fires (None: it never does)."""
    for t, p in enumerate(stop_probs):
        if p > threshold and t + 1 >= min_steps:
            return t + 1
    return None


def _verify(model, serve, model_bytes: bytes, texts: Sequence[str], front_end, max_steps: int, seed: int,
            threads: int | None) -> list[dict[str, Any]]:
    """Run TFLite and TF on each text with the same prenet masks.

    Two comparisons per text:

    - **lockstep** (the pass/fail check): TF decodes with teacher forcing on the frames the
      TFLite model fed back to itself, so both compute every step from identical inputs; mel
      (before and after the postnet) and stop probabilities must agree to rounding, and the
      stop token must fire at the same step.
    - **free running**: TF decodes on its own, as at inference. A trained autoregressive
      decoder amplifies float32 rounding (~1e-7 per step) exponentially, so long utterances
      drift apart (TensorFlow with and without oneDNN drifts the same way); reported only.
    """
    import tensorflow as tf

    m = model.settings
    r = model.r
    lockstep = _lockstep_function(model)
    interp = load_interpreter(threads=threads, model_content=model_bytes)
    runner = interp.get_signature_runner("serve")  # resizes text_ids per text, same interpreter
    rows = []
    for i, text in enumerate(texts):
        ids = np.asarray([front_end.encode(text)], np.int32)
        masks = prenet_masks(max_steps, 1, sum(m.prenet_units), m.prenet_dropout, seed + i)
        limit = np.asarray([max_steps], np.int32)
        t0 = time.perf_counter()
        got = runner(text_ids=ids, prenet_masks=masks, step_limit=limit)
        t1 = time.perf_counter()
        free = {k: v.numpy() for k, v in serve(tf.constant(ids), tf.constant(masks), tf.constant(limit)).items()}
        t2 = time.perf_counter()
        n = int(got["mel_frames"][0])
        steps = n // r
        lock = {k: v.numpy() for k, v in lockstep(tf.constant(ids), tf.constant(got["mel_before_postnet"][:, :n]),
                                                  tf.constant(masks[:steps])).items()}
        lock_diff = max(float(np.abs(lock["mel"] - got["mel"][:, :n]).max()) if n else 0.0,
                        float(np.abs(lock["mel_before_postnet"] - got["mel_before_postnet"][:, :n]).max())
                        if n else 0.0)
        stop_tf = _stop_step(lock["stop_probs"][0], m.stop_threshold, m.min_decoder_steps)
        stop_lite = steps if bool(got["finished"][0]) else None
        k = min(free["mel"].shape[1], n)
        rows.append({
            "text": text, "tokens": int(ids.shape[1]), "frames_tflite": n,
            "max_abs_diff": lock_diff, "stop_step_tflite": stop_lite, "stop_step_tf": stop_tf,
            "stop_prob_diff": float(np.abs(lock["stop_probs"] - got["stop_probs"][:, :steps]).max()) if steps else 0.0,
            "frames_tf_free": int(free["mel_frames"][0]),
            "free_running_max_diff": float(np.abs(free["mel"][:, :k] - got["mel"][:, :k]).max()) if k else 0.0,
            "tflite_ms": (t1 - t0) * 1000, "tf_ms": (t2 - t1) * 1000,
        })
    return rows


def _load(source: str | Path):
    """(model, RunInfo) from a run directory or a .keras file inside one (or its snapshots/)."""
    from .runs import load_model, load_run, run_and_model

    run_dir, path = run_and_model(source)
    info = load_run(run_dir)
    return load_model(path), info, path


def _front_end(info):
    """The text front end of this version, refused if it would number symbols differently
    from the run's table (the exported model would read the wrong ids)."""
    from .text import TextFrontEnd

    front_end = TextFrontEnd.from_config(info.config.text)
    symbols = info.data.get("symbols", {}).get("symbols")
    if symbols is not None and list(front_end.symbols.symbols) != list(symbols):
        raise ExportError(f"{info.run_dir}: the run's symbol table differs from this version's front end; "
                          "export with the tf_tacokd version that trained it")
    return front_end


def _require_agreement(rows: list[dict[str, Any]], tolerance: float) -> None:
    """Refuse a float32 model whose mels differ from TensorFlow's beyond ``tolerance`` or
    that stops at another step, on any verification text."""
    bad = [r for r in rows if r["max_abs_diff"] > tolerance or r["stop_step_tf"] != r["stop_step_tflite"]]
    if bad:
        raise ExportError("the float32 TFLite model disagrees with TensorFlow: " + "; ".join(
            f"{r['text']!r}: max |mel diff| {r['max_abs_diff']:.2e} (tolerance {tolerance:.0e}), "
            f"stop step {r['stop_step_tf']} (TF) vs {r['stop_step_tflite']} (TFLite)" for r in bad)
            + "; nothing was written")


def _write(out: Path, model_bytes: bytes, sidecar: dict[str, Any]) -> Path:
    """The model (written whole, then renamed) and its sidecar next to it; the sidecar's path."""
    out.parent.mkdir(parents=True, exist_ok=True)
    write_bytes(out, model_bytes)
    return write_json(sidecar_path(out), sidecar, ensure_ascii=False)


def export_tflite(
    source: str | Path,
    out: str | Path,
    quantize: str | None = None,
    max_steps: int | None = None,
    alignments: bool | None = None,
    texts: Sequence[str] | None = None,
    tolerance: float | None = None,
    seed: int = 0,
    threads: int | None = None,
) -> ExportResult:
    """Convert a trained model to ``out`` (``.tflite``) plus its JSON sidecar, and verify it.

    Args:
        source: a run directory (its ``model.keras``) or a ``.keras`` file inside a run directory.
        out: the ``.tflite`` path; the sidecar is written next to it with a ``.json`` suffix.
        quantize: ``none`` (float32), ``dynamic`` (int8 weights) or ``float16``
            (default ``export.quantize``).
        max_steps: decoder step bound (default ``export.max_steps``).
        alignments: also output attention weights (default ``export.alignments``).
        texts: verification texts (default: three of different lengths in the model's language).
        tolerance: float32 max |mel difference| allowed (default ``export.tolerance``).
        seed: prenet masks of verification text ``i`` come from ``seed + i``.
        threads: interpreter threads for the verification.

    Raises:
        ExportError: builtin-only conversion impossible (the TF ops are named), or the float32
            model disagrees with TF beyond ``tolerance`` or in its stop step.

    Many parameters because each is a ``tacokd export`` option (most with an ``[export]``
    config default). The stages: check the inputs, convert, verify against TensorFlow, write.
    """
    t_start = time.perf_counter()
    model, info, model_path = _load(source)
    cfg = info.config
    e = cfg.export
    quantize = quantize or e.quantize
    if quantize not in QUANTIZATIONS:
        raise ValueError(f"quantize={quantize!r}: choose from {', '.join(QUANTIZATIONS)}")
    max_steps = max_steps or e.max_steps
    alignments = e.alignments if alignments is None else alignments
    tolerance = e.tolerance if tolerance is None else tolerance
    out = Path(out)
    if out.suffix != ".tflite":
        raise ValueError(f"{out}: the output file must end in .tflite")
    front_end = _front_end(info)
    texts = list(texts or DEFAULT_TEXTS[cfg.text.language])
    if not texts or any(not t.strip() for t in texts):
        raise ValueError("verification texts must not be empty")
    max_text = cfg.data.max_text_len
    serve = serving_function(model, max_steps, alignments, max_text if alignments else None)

    with tempfile.TemporaryDirectory(prefix="tacokd-export-") as tmp:
        model_bytes = _convert(model, serve, quantize, Path(tmp))
    rows = _verify(model, serve, model_bytes, texts, front_end, max_steps, seed, threads)
    if quantize == "none":
        _require_agreement(rows, tolerance)
    ops = _op_names(model_bytes)
    if not ops or any(op.startswith("Flex") or op == "CUSTOM" for op in ops):
        raise ExportError(f"unexpected ops in the converted model (Flex or custom): {ops}")
    sidecar = build_sidecar(
        cfg, front_end.get_config(), max_steps, max_text, quantize, alignments, ops,
        source={"model": str(model_path), "weights_sha256": weights_hash(model),
                "model_file_sha256": hashlib.sha256(model_path.read_bytes()).hexdigest(),
                "config_hash": cfg.hash()},
        mel_stats=info.data.get("mel_stats") if cfg.audio.normalize_mel else None,
        verification={"tolerance": tolerance, "texts": rows})
    side = _write(out, model_bytes, sidecar)
    return ExportResult(out, side, out.stat().st_size, quantize, max_steps, rows, ops,
                        time.perf_counter() - t_start)

