"""Turn a ``kap-cds rules diff`` argument into a rule-set directory: a directory as it is, or a
git revision whose ``rules/`` tree is extracted (``git archive``) into a temporary directory.
Nothing in the working tree or the index is touched."""

from __future__ import annotations

import io
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cds.config import REPO_ROOT
from cds.errors import CdsError

RULES_SUBDIR = "rules"
GIT_TIMEOUT_SECONDS = 60


def rules_dir_of(path: Path) -> Path:
    """A rule-set directory, or a checkout holding one in ``rules/``."""
    if not (path / "policy.yaml").exists() and (path / RULES_SUBDIR / "policy.yaml").exists():
        return path / RULES_SUBDIR
    return path


@contextmanager
def materialise(spec: str, cwd: Path | None = None) -> Iterator[Path]:
    """Yield the rule-set directory ``spec`` names; a revision's copy is removed afterwards."""
    path = Path(spec)
    if path.is_dir():
        yield rules_dir_of(path)
        return
    root = _git_root(cwd or Path.cwd())
    commit = _resolve(root, spec)
    with tempfile.TemporaryDirectory(prefix="kap-cds-diff-") as tmp:
        archive = _git(root, "archive", "--format=tar", commit, "--", RULES_SUBDIR)
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(tmp, filter="data")  # "data": no links or paths outside tmp
        yield Path(tmp) / RULES_SUBDIR


def _git(root: Path, *args: str) -> bytes:
    try:
        done = subprocess.run(
            ["git", "-C", str(root), *args],
            capture_output=True,
            check=False,
            timeout=GIT_TIMEOUT_SECONDS,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CdsError(f"git {args[0]} failed: {type(exc).__name__}") from None
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip().splitlines()
        raise CdsError(f"git {args[0]} failed: {message[-1] if message else done.returncode}")
    return done.stdout


def _git_root(cwd: Path) -> Path:
    for candidate in (cwd, REPO_ROOT):
        try:
            return Path(_git(candidate, "rev-parse", "--show-toplevel").decode().strip())
        except CdsError:
            continue
    raise CdsError("not a directory, and no git repository here to read a revision from")


def _resolve(root: Path, spec: str) -> str:
    if spec.startswith("-"):  # never let a revision be read as a git option
        raise CdsError(f"{spec!r} is neither a directory nor a git revision")
    try:
        return _git(root, "rev-parse", "--verify", "--quiet", f"{spec}^{{commit}}").decode().strip()
    except CdsError:
        raise CdsError(f"{spec!r} is neither a directory nor a git revision") from None
