"""Where the real-model fixtures live, for tests, notebooks and benchmarks.

The fixtures (pretrained files and photos) are never part of the project. They are found at
``$MOBILENET_NP_FIXTURES`` or, by default, at ``../shared/fixtures`` beside the project checkout.
"""
import os
from pathlib import Path

_REPO_ROOT = Path(__file__).resolve().parent.parent


def fixtures_dir():
    """The fixtures folder, or ``None`` when it is absent."""
    env = os.environ.get("MOBILENET_NP_FIXTURES")
    candidates = [Path(env)] if env else [_REPO_ROOT.parent / "shared" / "fixtures", Path.cwd().parent / "shared" / "fixtures"]
    for path in candidates:
        if path.is_dir():
            return path
    return None


def fixture_path(relative):
    """Path of one fixture file (relative to the fixtures folder), or ``None`` when it is not there."""
    root = fixtures_dir()
    if root is None:
        return None
    path = root / relative
    return path if path.exists() else None


def missing_reason(relative):
    """A sentence saying why a fixture-based check cannot run here."""
    root = fixtures_dir()
    if root is None:
        return ("real-model fixtures not found: set MOBILENET_NP_FIXTURES to the fixtures folder "
                "(default ../shared/fixtures beside the checkout)")
    return f"fixture {relative} not found under {root}"
