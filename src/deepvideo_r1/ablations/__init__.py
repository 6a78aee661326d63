"""The paper's ablations (Tables 4, 5, 7, 8 and a mechanism table) as one resumable command.

rows.py defines each row as config overrides, stats.py the intervals, runner.py the shared warm
starts and the row runs, report.py ablations.json / ablations.md and the plots.
"""

from deepvideo_r1.ablations.rows import TABLE_NAMES, Row, Table, build_tables
from deepvideo_r1.ablations.runner import AblationError, BaseSpec, run_ablations

__all__ = ["TABLE_NAMES", "AblationError", "BaseSpec", "Row", "Table", "build_tables", "run_ablations"]
