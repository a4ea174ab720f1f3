"""``python -m landmark_lab.predict ckpt_path=... input=PHOTO_OR_DIR [out_dir=...] [detector=dlib|boxes|none]``.

68 landmarks per face on photos (:func:`landmark_lab.inference.photos.predict_photos`).
"""

from landmark_lab.cli.app import run_app


def main() -> None:
    from landmark_lab.inference.photos import predict_photos

    run_app("predict", predict_photos)


if __name__ == "__main__":
    main()
