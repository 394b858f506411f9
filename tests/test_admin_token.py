"""The generated admin token: first starts racing on a fresh data dir agree on one token,
and nobody ever reads a half-written one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from gateway.app import load_admin_token
from gateway.settings import Settings

SCRIPT = """
import sys, time
from pathlib import Path
from gateway.app import load_admin_token
from gateway.settings import Settings
go = Path(sys.argv[2])
while not go.exists():
    time.sleep(0.001)
token, generated = load_admin_token(Settings(data_dir=Path(sys.argv[1])))
print(token, generated)
"""


def test_first_starts_at_once_agree_on_one_token(tmp_path: Path) -> None:
    data, go = tmp_path / "data", tmp_path / "go"
    procs = [
        subprocess.Popen([sys.executable, "-c", SCRIPT, str(data), str(go)], stdout=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    go.touch()  # all start reading at once
    answers = [p.communicate(timeout=30)[0].split() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    tokens = {token for token, _ in answers}
    assert len(tokens) == 1 and len(tokens.pop()) >= 32
    assert [generated for _, generated in answers].count("True") == 1
    assert [f.name for f in data.iterdir()] == ["admin_token"]  # no scratch file left
    assert (data / "admin_token").stat().st_mode & 0o777 == 0o600


def test_a_kept_token_is_read_back(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    token, generated = load_admin_token(settings)
    assert generated
    assert load_admin_token(settings) == (token, False)
