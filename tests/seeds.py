"""The seed documents, read where the project keeps them: ``../shared/seeds`` beside the clone.

A test that runs a seed's examples reads them from the seed file at test time; a missing seed
is a failure, never a skip.  In a git worktree the clone's root is the main checkout's, found
through the ``.git`` file; ``SATCHEL_SEEDS`` names the directory explicitly.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _candidates() -> list[Path]:
    found = []
    explicit = os.environ.get("SATCHEL_SEEDS")
    if explicit:
        found.append(Path(explicit))
    found.append(ROOT.parent / "shared" / "seeds")
    git = ROOT / ".git"
    if git.is_file():  # a worktree: ".git" names <main>/.git/worktrees/<name>
        text = git.read_text().strip()
        if text.startswith("gitdir:"):
            gitdir = Path(text.partition(":")[2].strip())
            common = gitdir
            commondir = gitdir / "commondir"
            if commondir.is_file():
                common = (gitdir / commondir.read_text().strip()).resolve()
            found.append(common.parent.parent / "shared" / "seeds")
    return found


def seed_text(name: str) -> str:
    """The text of seed file ``name``; AssertionError (a failing test) when it is missing."""
    tried = []
    for directory in _candidates():
        path = directory / name
        if path.is_file():
            return path.read_text(encoding="utf-8")
        tried.append(str(path))
    raise AssertionError(f"seed {name} not found; looked at: {', '.join(tried)}")
