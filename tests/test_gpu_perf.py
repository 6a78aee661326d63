"""acceptance/gpu_perf.py's CPU dry run: every part runs in its own process at test widths and
the JSON holds each part's numbers and the shares derived from the hw part."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "acceptance" / "gpu_perf.py"


def test_cpu_dry_run_reports_every_part(tmp_path):
    out = tmp_path / "gpu_perf.json"
    cmd = [sys.executable, str(SCRIPT), "--device", "cpu", "--tiny", "--json", str(out)]
    done = subprocess.run(
        cmd, capture_output=True, text=True, timeout=900, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    report = json.loads(out.read_text())
    parts = report["parts"]
    assert report["device"] == "cpu" and report["tiny"]
    for name in ("hw", "decode", "vision", "update"):
        assert parts[name]["ok"], (name, parts[name].get("error"))
    hw = parts["hw"]
    for rows in (8, 64):
        for engine in ("dynamic", "static_compiled"):
            case = parts["decode"][f"B{rows}_{engine}"]
            assert case["recompiles_while_timing"] == 0
            # % of the bandwidth limit = bytes per step / copy bandwidth / step time
            limit_ms = 1e3 * case["bytes_per_step"] / hw["copy_bytes_per_s"]
            pct = 100 * limit_ms / case["ms_per_step"]
            assert case["pct_of_bandwidth_limit"] == pytest.approx(pct, abs=0.1)
    assert parts["vision"]["max_abs_feature_diff"] < 1e-2  # bf16 features, per window vs one call
    update = parts["update"]
    cases = [f"N{n}_ckpt{c}_{f}" for n in (1, 4) for c in ("on", "off") for f in ("cached", "encoded")]
    for key in cases:
        case = update[key]
        mfu = 6 * update["trainable_parameters"] * case["tokens"] / case["update_s"] / hw["matmul_bf16_flops"]
        assert case["mfu"] == pytest.approx(mfu, rel=1e-2)
    assert update["N4_ckpton_cached"]["tokens"] > 3 * update["N1_ckpton_cached"]["tokens"]
    assert parts["sharded_fsdp2"]["skipped"] and parts["sharded_zero3"]["skipped"]  # GPU only
