"""Schemathesis over /docs.json against the real server, once with each key scope: no generated request,
valid or not, gets a server error (5xx), and the server is still ready after it.

`make fuzz` runs this module alone; `make test` runs it with the rest. A small example count keeps each
run to about a minute, and a fixed seed makes a failure in CI reproducible; search further by hand with
`st run URL/docs.json -H 'Authorization: Bearer KEY' -c not_a_server_error -n 500 --seed N`.
"""

from __future__ import annotations

import re
import subprocess

import httpx
import pytest

from service.launch import BIN

EXAMPLES = 20
SEED = 18


@pytest.mark.parametrize("scope", ["campaign", "risk"])
def test_no_generated_request_gets_a_server_error(server, keys, scope, tmp_path):
    spec = httpx.get(server.url + "/docs.json").json()
    operations = sum(len(item) for item in spec["paths"].values())
    # In a temporary folder: schemathesis and hypothesis keep their caches in the working directory.
    r = subprocess.run([str(BIN / "st"), "run", server.url + "/docs.json", "--checks", "not_a_server_error",
                        "--max-examples", str(EXAMPLES), "--seed", str(SEED), "--no-color",
                        "--header", f"Authorization: Bearer {keys[scope]}"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-8000:] + r.stderr[-2000:]
    assert f"Tested: {operations}" in r.stdout, r.stdout[-3000:]  # every operation was called, none skipped
    generated = re.search(r"(\d+) generated, (\d+) passed", r.stdout)
    assert generated and int(generated[1]) >= operations * EXAMPLES and generated[1] == generated[2], r.stdout[-3000:]
    assert httpx.get(server.url + "/readyz").status_code == 200
