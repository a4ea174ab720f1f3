"""``python -m landmark_lab.predict ckpt_path=CKPT_OR_ONNX input=PHOTO_DIR_OR_VIDEO [out_dir=...] [detector=...]``.

Every face the detector finds (or the boxes given, or the whole image) gets 68 points in the photo's own pixels:
``predictions.json``, drawn images and optionally 300-W ``.pts`` files; an unreadable image is listed under
``skipped`` and the rest of the folder goes on. A video (or a folder of frames with ``video=true``) is tracked
(:mod:`landmark_lab.inference.video`).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from omegaconf import DictConfig
from tqdm.auto import tqdm

from landmark_lab.cli.app import run_app
from landmark_lab.data.folder import read_image
from landmark_lab.data.pts import write_pts
from landmark_lab.errors import ConfigError, DataError
from landmark_lab.inference.detectors import DETECTORS, boxes_in_image, build_detector, read_box_table
from landmark_lab.inference.photos import check_photo_size, draw_faces, list_images, output_stems, prepare_out_dir
from landmark_lab.inference.predictor import Predictor
from landmark_lab.inference.video import is_video, read_frames, track_video
from landmark_lab.utils.checks import check_checkpoint_path, choice, integer, number, required
from landmark_lab.utils.run import run_dir_of, write_json

log = logging.getLogger("landmark_lab.predict")


def predict_video(cfg: DictConfig, source: Path, predictor: Predictor) -> dict[str, Any]:
    """Track the face through a video file or a folder of frames (:mod:`landmark_lab.inference.video`)."""
    frames, fps, total = read_frames(source)
    out = prepare_out_dir(Path(str(cfg.out_dir)).expanduser() if cfg.get("out_dir") else run_dir_of(cfg),
                          bool(cfg.get("overwrite", False)))
    summary = track_video(predictor, frames, out, fps, float(cfg.redetect_below), float(cfg.smooth), bool(cfg.flip),
                          total, draw_faces if cfg.get("draw", True) else None)
    payload = {"model": str(cfg.ckpt_path), "input": str(source), "detector": str(cfg.detector), "flip": bool(cfg.flip),
               "fps_input": fps, **summary,
               "files": {"frames.csv": "one row per frame: detected (1 = the detector ran), score, x0,y0,...,x67,y67 "
                         "in image pixels (empty: no face)", "annotated.mp4": "the frames with the points drawn"}}
    write_json(out / "predictions.json", payload)
    if summary["faces"] == 0:
        raise DataError(f"no face was found in any of the {summary['frames']} frames of {source}; frames.csv in {out}.")
    print(f"[landmark_lab] {summary['frames']} frames, a face in {summary['faces']}, the detector ran on "
          f"{summary['detector_runs']}: {summary['fps_tracking']:.1f} frames/s tracking, {summary['fps_total']:.1f} "
          f"frames/s with reading and writing\n[landmark_lab] results: {out / 'predictions.json'}")
    return payload


def predict_photos(cfg: DictConfig) -> dict[str, Any]:
    """Predict every image of ``cfg.input`` (a video, or a folder of frames with ``video=true``: tracked, see
    :func:`predict_video`); returns what ``predictions.json`` holds."""
    t0 = time.perf_counter()
    check_checkpoint_path(cfg)
    required(cfg, "input", "PHOTO_OR_FOLDER")
    detector_name = choice(cfg, "detector", DETECTORS)
    integer(cfg, "refine", low=0)
    source = Path(str(cfg.input)).expanduser()
    video = cfg.get("video", "auto")
    if video not in ("auto", True, False):
        raise ConfigError(f"video={video!r} is not valid; use auto (video files tracked), true (also a folder of frames) "
                          "or false.")
    if is_video(source) and video is False:
        raise ConfigError(f"input={str(source)!r} is a video and video=false; drop video=false to track it.")
    if is_video(source) or (video is True and source.is_dir()):
        if detector_name == "boxes":
            raise ConfigError("detector=boxes gives boxes per photo; a video takes detector=dlib or none.")
        number(cfg, "smooth", low=0, high=1, strict_low=True)
        number(cfg, "redetect_below", low=0, high=1)
        detector = build_detector(detector_name, int(cfg.get("upsample", 1)))
        return predict_video(cfg, source, Predictor.load(cfg.ckpt_path, str(cfg.get("device", "auto")), detector,
                                                         int(cfg.refine)))
    images = list_images(source)
    table = None
    if detector_name == "boxes":
        if not cfg.get("boxes"):
            raise ConfigError("detector=boxes needs boxes=PATH (a CSV image,x0,y0,x1,y1 or a JSON of boxes per image).")
        table = read_box_table(cfg.boxes)
    detector = build_detector(detector_name, int(cfg.get("upsample", 1)))
    predictor = Predictor.load(cfg.ckpt_path, str(cfg.get("device", "auto")), detector, int(cfg.refine))
    out = prepare_out_dir(Path(str(cfg.out_dir)).expanduser() if cfg.get("out_dir") else run_dir_of(cfg),
                          bool(cfg.get("overwrite", False)))
    stems = output_stems(images)
    results: dict[str, Any] = {}
    skipped: list[dict[str, str]] = []
    if table is not None:
        unmatched = [p.name for p in images if p.name not in table]
        if len(unmatched) == len(images):
            raise DataError(f"boxes={cfg.boxes}: no row names any of the {len(images)} input image(s) (e.g. "
                            f"{images[0].name}; the table names e.g. {next(iter(table), 'nothing')}). Rows name each "
                            "image by its file name.")
        if unmatched:
            log.warning("boxes=%s: %d of %d image(s) have no row (e.g. %s); they get no face", cfg.boxes,
                        len(unmatched), len(images), unmatched[0])
    for path in tqdm(images, desc="predicting", unit="image", disable=len(images) < 2):
        try:
            check_photo_size(path)
            image = read_image(path)
        except DataError as exc:
            skipped.append({"image": str(path), "reason": str(exc)})
            continue
        boxes = None
        if table is not None:
            boxes, outside = boxes_in_image(table.get(path.name, []), image.shape[1], image.shape[0])
            skipped += [{"image": str(path), "reason": f"box {list(b)} lies outside the {image.shape[1]}x"
                         f"{image.shape[0]} image"} for b in outside]
        faces = predictor.predict(image, boxes=boxes, flip=bool(cfg.flip))
        if any(not np.isfinite(f.landmarks).all() for f in faces):
            raise DataError(f"{cfg.ckpt_path}: the model predicts non-finite landmarks on {path.name} (NaN or inf); "
                            "the model diverged or the file is damaged. Nothing more is written.")
        results[path.name] = {"size": [int(image.shape[1]), int(image.shape[0])], "faces": [f.as_json() for f in faces]}
        if cfg.get("draw", True):
            (out / "drawn").mkdir(exist_ok=True)
            cv2.imwrite(str(out / "drawn" / f"{stems[path]}.jpg"), draw_faces(image, faces))
        if cfg.get("write_pts", False):
            (out / "pts").mkdir(exist_ok=True)
            for k, f in enumerate(faces):
                write_pts(out / "pts" / f"{stems[path]}_{k}.pts", f.landmarks)
    payload = {
        "model": str(cfg.ckpt_path), "detector": detector_name, "flip": bool(cfg.flip), "refine": int(cfg.refine),
        "coordinates": "image pixels, 0-based pixel centres (the .pts files are 1-based, as 300-W)",
        "images": results, "skipped": skipped, "seconds": round(time.perf_counter() - t0, 1),
    }
    write_json(out / "predictions.json", payload)
    n_faces = sum(len(r["faces"]) for r in results.values())
    if n_faces == 0:  # a run that predicted nothing is no success, whatever it skipped
        raise DataError(f"no face was predicted in {len(images)} input image(s)"
                        + (f"; {len(skipped)} skipped (e.g. {skipped[0]['reason']})" if skipped else "")
                        + f". predictions.json in {out} lists them.")
    print(f"[landmark_lab] {n_faces} face(s) in {len(results)} image(s)"
          + (f"; {len(skipped)} unreadable image(s) skipped (listed in predictions.json)" if skipped else "")
          + f"\n[landmark_lab] results: {out / 'predictions.json'}")
    return payload


def main() -> None:
    run_app("predict", predict_photos)


if __name__ == "__main__":
    main()
