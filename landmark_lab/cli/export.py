"""``python -m landmark_lab.export ckpt_path=... format=onnx|torch_export [out=...]``: a deployable model.

(:func:`landmark_lab.inference.export.export_checkpoint`.)
"""

from landmark_lab.cli.app import run_app


def main() -> None:
    from landmark_lab.inference.export import export_checkpoint

    run_app("export", export_checkpoint)


if __name__ == "__main__":
    main()
