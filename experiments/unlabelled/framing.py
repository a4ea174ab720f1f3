"""Can unlabelled photos give crop imitation better framing statistics than the labelled budget? (issue #34, item 4)

Crop imitation re-frames synthetic faces like real ones, with the framing (face size / image side, face offset)
measured on the first labelled real faces. Unlabelled photos have no landmarks; their framing can only come from a
face detector's box (dlib's HOG detector, mapped to the landmark box with the medians `dlib_peer` uses). This
script compares, against the framing of the whole pool measured from its labels (an analysis: training never reads
them), (a) the framing of 25 labelled photos (a budget of 50 with mirrors) drawn at random, 50 times, and (b) the
detector's framing of every photo. KS = two-sample Kolmogorov-Smirnov distance to the pool's labelled framing.

    python experiments/unlabelled/framing.py --root ../shared/data/300w      # a few minutes on one core (dlib)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from tqdm import tqdm

from landmark_lab.analysis.stats import ks_distance
from landmark_lab.data.folder import read_image
from landmark_lab.data.w300 import load_split
from landmark_lab.inference.detectors import DlibDetector
from landmark_lab.inference.dlib_peer import landmark_box_from_detector_box
from landmark_lab.transforms.crop_imitation import image_size, measure

COLUMNS = ("face size / image side", "face offset x", "face offset y")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=Path("../shared/data/300w"), help="300-W folder (afw, helen, ...)")
    ap.add_argument("--split", nargs="+", default=["afw", "helen/trainset"], help="the training pool's folders")
    ap.add_argument("--photos", type=int, default=25, help="labelled photos per draw (a budget of 50 with mirrors)")
    ap.add_argument("--draws", type=int, default=50)
    args = ap.parse_args()

    sources = load_split(args.root, args.split, lazy=True)
    landmarks = np.concatenate([s.landmarks for s in sources]).astype(np.float64)
    images = [p for s in sources for p in s.images]
    wh = np.array([image_size(p) for p in images], dtype=np.float64)
    truth = measure(landmarks, wh).columns()

    detector, boxes, found = DlibDetector(upsample=1), [], []
    for i, path in enumerate(tqdm(images, desc="dlib detector", unit="photo")):
        faces = detector(read_image(path))
        if faces:
            x0, y0, x1, y1 = landmark_box_from_detector_box(faces[0])
            boxes.append([[x0, y0], [x1, y1]])  # the two corners frame the face as its landmarks would
            found.append(i)
    detected = measure(np.array(boxes, dtype=np.float64), wh[found]).columns()

    rng = np.random.default_rng(0)
    print(f"\nPool: {len(images)} photos; dlib found a face in {len(found)}.\n")
    print(f"| framing | pool median (p10-p90) | KS, {args.photos} labelled photos (mean of {args.draws} draws) "
          "| KS, detector on every photo | detector median (p10-p90) |")
    print("| --- | --- | --- | --- | --- |")
    for k in COLUMNS:
        ks = [ks_distance(truth[k][rng.choice(len(images), args.photos, replace=False)], truth[k])
              for _ in range(args.draws)]
        t, d = np.percentile(truth[k], [10, 50, 90]), np.percentile(detected[k], [10, 50, 90])
        print(f"| {k} | {t[1]:.3f} ({t[0]:.3f}-{t[2]:.3f}) | {np.mean(ks):.3f} | {ks_distance(detected[k], truth[k]):.3f} "
              f"| {d[1]:.3f} ({d[0]:.3f}-{d[2]:.3f}) |")


if __name__ == "__main__":
    main()
