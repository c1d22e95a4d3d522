"""Finding a server's processes: its workers are its children, their batch processes its grandchildren."""

from __future__ import annotations

import os
import subprocess
import sys

from service.launch import descendants


def test_descendants_are_found_below_a_new_session_at_any_depth():
    # A child in a session of its own (as servers are started) whose own child sleeps.
    code = "import subprocess, sys; p = subprocess.Popen(['sleep', '30']); print(p.pid, flush=True); p.wait()"
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        grandchild = int(parent.stdout.readline())
        found = descendants(parent.pid)
        assert found[0] == parent.pid and grandchild in found
        assert os.getpid() not in found, "nothing above the process"
        assert descendants(grandchild) == [grandchild]
    finally:
        os.killpg(parent.pid, 9)
        parent.wait()
