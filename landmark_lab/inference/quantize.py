"""int8 ONNX models: static quantisation calibrated on training crops, checked for accuracy and speed.

``python -m landmark_lab.export ckpt_path=CKPT format=onnx quantize=int8 [data=...]`` exports the fp32 model,
quantises it with ONNX Runtime (QDQ, int8 weights per channel, uint8 activations) using crops of the data config's
real training faces for calibration, then measures both models on the real test faces (NME io, landmark-box crops,
the training crop) and their one-thread batch-1 latency. An int8 model whose NME is more than
``max_nme_change`` points of % above the fp32 one is refused and not written.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from landmark_lab.errors import ConfigError, DataError
from landmark_lab.landmarks import landmark_box
from landmark_lab.metrics import nme_per_face


def spread(total: int, n: int) -> np.ndarray:
    """Indices of up to ``n`` of ``total`` items, evenly spread: the faces a calibration or a check takes."""
    return np.unique(np.linspace(0, total - 1, min(n, total)).round().astype(int))


def _crops(sources: list, items: list, crop: dict[str, Any], n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Up to ``n`` faces evenly spread over ``items``: (N, 3, S, S) float32 crops (RGB 0..255, as the exported model
    takes them) at the training crop around each face's landmark box, the (N, 68, 2) labels in crop pixels and the
    (N,) crop scales (crop pixels per image pixel)."""
    import cv2

    from landmark_lab.transforms.geometry import crop_matrix, crop_scale

    size, scale = int(crop.get("size", 64)), float(crop.get("scale", 1.25))
    images, labels, scales = [], [], []
    for k in spread(len(items), n):
        it = items[k]
        sample = sources[it.source].load(it.index)
        m = crop_matrix(landmark_box(sample.landmarks), size, scale)
        images.append(cv2.warpAffine(sample.image, m, (size, size), flags=cv2.INTER_LINEAR,
                                     borderMode=cv2.BORDER_REPLICATE).astype(np.float32).transpose(2, 0, 1))
        labels.append(sample.landmarks.astype(np.float64) @ m[:, :2].T + m[:, 2])
        scales.append(float(crop_scale(m)))
    return np.stack(images), np.stack(labels).astype(np.float32), np.asarray(scales, np.float32)


def real_crops(data: dict[str, Any], split: str, crop: dict[str, Any], n: int | None = None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Up to ``n`` (None: every) faces of the real ``split`` (``train`` or ``test``) of a data config ``data`` (a
    run's recorded ``data``), as :func:`_crops` cuts them: the exported model's input, the labels in crop pixels and
    the crop scales."""
    from landmark_lab.datamodules.sources import open_sources, prepare
    from landmark_lab.datamodules.splits import expand, groups_of

    prepare(data["real"], "real")
    sources = open_sources(data["real"], "real", split, progress=False)
    items = expand(groups_of([len(s) for s in sources]), False)
    return _crops(sources, items, crop, len(items) if n is None else n)


def onnx_session(path: Path, threads: int = 1) -> Any:
    """An ONNX Runtime CPU session on ``threads`` threads (one: the figures every latency here is quoted at)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def predict_crops(session: Any, crops: np.ndarray, batch: int = 32) -> np.ndarray:
    """The (N, 68, 2) landmarks (crop pixels) an ONNX session gives for ``crops`` (N, 3, S, S), ``batch`` at a time."""
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: crops[i:i + batch]})[0] for i in range(0, len(crops), batch)])


def call_ms(fn: Callable[[], Any], runs: int = 100, warmup: int = 10) -> list[float]:
    """Milliseconds of each of ``runs`` calls of ``fn``, after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(1000.0 * (time.perf_counter() - t0))
    return times


def median_ms(fn: Callable[[], Any], runs: int = 100, warmup: int = 10) -> float:
    """Median milliseconds of one call of ``fn`` over ``runs`` calls, after ``warmup`` untimed ones."""
    return float(np.median(call_ms(fn, runs, warmup)))


def latency_ms(session: Any, crop: np.ndarray, runs: int = 100, warmup: int = 10) -> float:
    """Median milliseconds of one batch-1 call on ``crop`` (1, 3, S, S)."""
    name = session.get_inputs()[0].name
    return median_ms(lambda: session.run(None, {name: crop}), runs, warmup)


def quantize_int8(fp32: Path, out: Path, calibration: np.ndarray) -> Path:
    """Write ``fp32`` quantised to int8 (QDQ, per-channel int8 weights, uint8 activations) at ``out``, its
    ``landmark_lab`` metadata kept; calibrated on ``calibration`` crops."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        """Calibration batches for ONNX Runtime's static quantisation."""

        def __init__(self, name: str, crops: np.ndarray, batch: int = 16) -> None:
            self.batches = iter([{name: crops[i:i + batch]} for i in range(0, len(crops), batch)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.batches, None)

    reader = Reader(onnx_session(fp32).get_inputs()[0].name, calibration)
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / "int8.onnx"
        quantize_static(str(fp32), str(staged), reader, quant_format=QuantFormat.QDQ, per_channel=True,
                        weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8)
        source, proto = onnx.load(str(fp32)), onnx.load(str(staged))
        meta = {p.key: p.value for p in source.metadata_props}
        if "landmark_lab" in meta:
            info = json.loads(meta["landmark_lab"])
            info["quantized"] = "int8 (ONNX Runtime static, QDQ; per-channel int8 weights, uint8 activations)"
            del proto.metadata_props[:]
            entry = proto.metadata_props.add()
            entry.key, entry.value = "landmark_lab", json.dumps(info)
        onnx.save(proto, str(out))
    return out


def quantize_checked(model: Any, fp32: Path, out: Path, cfg: Any, calibration: np.ndarray | None = None,
                     check: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, Any]:
    """Quantise the exported ``fp32`` model into ``out`` and report NME and latency of both; refuses (nothing written
    at ``out``) when int8's NME exceeds fp32's by more than ``cfg.max_nme_change`` points of %. ``calibration``
    (crops) and ``check`` (crops, labels): the faces to use where the caller has them cut already (else
    ``cfg.calibration_faces`` training and ``cfg.check_faces`` test faces of ``cfg.data``)."""
    from omegaconf import OmegaConf

    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        raise ConfigError('quantize=int8 needs onnxruntime: pip install -e ".[predict]"') from None
    data = OmegaConf.to_container(cfg.data, resolve=True)
    crop = dict(model.hparams.crop or {})
    calib = calibration if calibration is not None else real_crops(data, "train", crop, int(cfg.calibration_faces))[0]
    test, truth = check if check is not None else real_crops(data, "test", crop, int(cfg.check_faces))[:2]
    quantize_int8(fp32, out, calib)
    sessions = {"fp32": onnx_session(fp32), "int8": onnx_session(out)}
    nme, ms = {}, {}
    for name, session in sessions.items():
        pred = predict_crops(session, test)
        if not np.isfinite(pred).all():
            out.unlink(missing_ok=True)
            raise DataError(f"{out}: the {name} model's predictions are not finite; nothing was written.")
        nme[name] = 100 * float(nme_per_face(torch.from_numpy(pred), torch.from_numpy(truth)).mean())
        ms[name] = latency_ms(session, test[:1], runs=int(cfg.get("latency_runs", 100)))
    change = nme["int8"] - nme["fp32"]
    report = {"nme_io_fp32": round(nme["fp32"], 3), "nme_io_int8": round(nme["int8"], 3),
              "nme_change": round(change, 3), "ms_fp32": round(ms["fp32"], 3), "ms_int8": round(ms["int8"], 3),
              "speedup": round(ms["fp32"] / ms["int8"], 2), "calibration_faces": len(calib), "check_faces": len(test),
              "max_nme_change": float(cfg.max_nme_change)}
    if change > float(cfg.max_nme_change):
        out.unlink(missing_ok=True)
        raise ConfigError(f"int8 costs {change:.2f} points of NME io on {len(test)} held-out test faces ({nme['fp32']:.2f} % "
                          f"-> {nme['int8']:.2f} %), more than max_nme_change={cfg.max_nme_change}; the int8 model was "
                          "not written. Keep fp32 (quantize=none), calibrate on more faces (calibration_faces=...), or "
                          "accept the loss with a larger max_nme_change.")
    return report
