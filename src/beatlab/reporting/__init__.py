"""Reports of runs and hypertuning experiments: the study's tables and figures, reproducibly.

`write_report([run_or_experiment, ...], out_dir)` writes out_dir/report.html (self-contained) and
out_dir/report.md with its PNG figures. The experiment directory layout it reads is described in
`beatlab.reporting.sources`.
"""

from beatlab.reporting.report import write_report

__all__ = ["write_report"]
