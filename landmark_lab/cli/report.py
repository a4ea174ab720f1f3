"""``python -m landmark_lab.report SWEEP_DIR [--runs] [--ced-budget 50] [--out DIR] [--reference EVAL_RUN ...]
[--recorded RESULTS_CSV ...] [--baseline RESULTS_CSV ...]``.

Table, plots and headline of a sweep folder (:func:`landmark_lab.reports.sweep.write_report`).
"""

from landmark_lab.cli.app import run_app


def main() -> None:
    from landmark_lab.reports.sweep import write_report

    run_app("report", write_report, flags={"--runs": "runs=true", "--ced-budget": "ced_budget", "--out": "out",
                                            "--reference": "references+=",
                                            "--recorded": "recorded+=", "--baseline": "baselines+="},
            positional="sweep")


if __name__ == "__main__":
    main()
