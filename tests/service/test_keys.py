"""The keys file: only hashes kept; a file that turns bad leaves the server on its last good keys and
the log naming the file, while the CLI refuses rather than write over what it could not read."""

from __future__ import annotations

import logging
import os

import pytest

from service.keys import KeyStore


def corrupt(path, text: str = '{"ab12cd34": {"name": "x", "scopes": ["campaign"],') -> None:
    tmp = path.with_suffix(".bad")
    tmp.write_text(text)
    os.replace(tmp, path)  # a new inode, as an editor or a deploy tool writes it


def test_the_file_holds_only_the_hash(tmp_path):
    key = KeyStore(tmp_path / "keys.json").add("ops", ["campaign"])
    assert key.split("_", 2)[2] not in (tmp_path / "keys.json").read_text()


@pytest.mark.parametrize("text", ['{"ab12cd34": {"name": "x",', "[1, 2]", '{"ab12cd34": {"name": "x"}}'])
def test_a_bad_file_keeps_the_last_good_keys_and_the_log_names_it(tmp_path, caplog, text):
    path = tmp_path / "keys.json"
    key = KeyStore(path).add("ops", ["campaign"])
    server = KeyStore(path, keep_last_good=True)
    assert server.verify(key).name == "ops"
    corrupt(path, text)
    with caplog.at_level(logging.ERROR, logger="opscore.service"):
        assert server.verify(key).name == "ops"  # at once: no wait, no error
        assert server.verify(key).name == "ops"
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and str(path) in errors[0] and "last good keys" in errors[0]
    assert key not in errors[0]


def test_the_cli_store_refuses_a_bad_file_instead_of_writing_over_it(tmp_path):
    path = tmp_path / "keys.json"
    KeyStore(path).add("ops", ["campaign"])
    corrupt(path)
    before = path.read_text()
    with pytest.raises(ValueError, match=r"keys\.json is unusable: not JSON"):
        KeyStore(path).add("other", ["risk"])
    assert path.read_text() == before
