"""The commands, the top floor: one module each, holding the command's body and its ``main()`` (a Hydra app).

``python -m landmark_lab.<command>`` and ``landmark-lab <command>`` both run ``landmark_lab.cli.<command>.main``.
"""

COMMANDS = {
    "train": "train a model (every stage of a strategy), test it, write metrics.json",
    "evaluate": "evaluate a checkpoint, or dlib's predictor (peer=dlib), on a real test split",
    "adapt": "fit a post-hoc label adapter to a trained model",
    "predict": "68 landmarks on photos (dlib detector, a box table, or whole images) or a video (tracked)",
    "export": "export a trained model to ONNX or torch.export",
    "report": "table, plots and headline of a sweep folder",
    "analyze": "domain-gap figures: crops, augment, labels, conventions, all; pseudo (a self-training run)",
    "bench": "throughput, latency and cache figures on this machine",
}
