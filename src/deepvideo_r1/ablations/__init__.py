"""The paper's ablations (Tables 4, 5, 7, 8 and a mechanism table) as one resumable command.

rows.py defines each row as config overrides, layout.py where the suite keeps its files,
runner.py the shared warm starts and the row runs, worker.py one run in a subprocess, report.py
ablations.json (intervals from metrics/stats.py), tables_md.py ablations.md, plots.py the plots.
"""

from deepvideo_r1.ablations.layout import AblationError, BaseSpec
from deepvideo_r1.ablations.rows import TABLE_NAMES, Row, Table, build_tables
from deepvideo_r1.ablations.runner import run_ablations

__all__ = ["TABLE_NAMES", "AblationError", "BaseSpec", "Row", "Table", "build_tables", "run_ablations"]
