"""The memory-tier work folders of a killed run are removed by the next run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from studylib import results


def test_tier_work_folders_of_a_killed_run_are_removed_by_the_next(tmp_path):
    base = tmp_path / "tiers"
    base.mkdir()
    code = ("import os, signal, sys\nfrom studylib.studies.recsys_memory_tiers import memory_tiers as mt\n"
            "w = mt.new_work_folder(sys.argv[1]); (w / 'emb.bin').write_bytes(b'x')\n"
            "if sys.argv[2] == 'kill':\n    os.kill(os.getpid(), signal.SIGKILL)\n")
    env = {**os.environ, "PYTHONPATH": str(Path(results.__file__).parents[1])}
    killed = subprocess.run([sys.executable, "-c", code, str(base), "kill"], env=env, capture_output=True)
    assert killed.returncode == -signal.SIGKILL
    assert len(list(base.glob("recsys-tiers-*"))) == 1  # what a kill leaves
    done = subprocess.run([sys.executable, "-c", code, str(base), "exit"], env=env, capture_output=True)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert list(base.iterdir()) == [], "a work folder outlived its run"
