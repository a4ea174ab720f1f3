"""``python -m landmark_lab.bench [--skip-sweep] [--deploy-only] [--index-only] [--batches 30] [training overrides]``.

Throughput, latency and pre-training-cache figures on this machine, printed and saved as ``bench.txt`` in the
run folder (:func:`landmark_lab.evaluation.speed.run_bench`). Asserts nothing.
"""

from landmark_lab.cli.app import run_app


def main() -> None:
    from landmark_lab.evaluation.speed import run_bench

    run_app("bench", run_bench, flags={"--skip-sweep": "bench.skip_sweep=true", "--deploy-only": "bench.deploy_only=true",
                                       "--index-only": "bench.index_only=true",
                                       "--batches": "bench.batches", "--workers": "data.num_workers",
                                       "--sweep-budgets": "bench.sweep_budgets"})


if __name__ == "__main__":
    main()
