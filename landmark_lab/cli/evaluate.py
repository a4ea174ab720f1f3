"""``python -m landmark_lab.evaluate ckpt_path=... | peer=dlib [data=...] [eval.box=landmarks|detector] [eval.flip=true]``.

Evaluates a checkpoint, or dlib's predictor, on a real test split with every metric and figure
(:func:`landmark_lab.evaluation.checkpoint.evaluate_checkpoint`).
"""

from landmark_lab.cli.app import run_app


def main() -> None:
    from landmark_lab.evaluation.checkpoint import evaluate_checkpoint

    run_app("evaluate", evaluate_checkpoint)


if __name__ == "__main__":
    main()
