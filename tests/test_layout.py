"""The layout issue #22 asked for, kept: core/ holds only its layer subpackages plus __init__.py and errors.py, and
no module of core/ or training/ grows past MAX_LINES (the import contracts themselves run as lint-imports)."""

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CORE = REPO / "nightlight_fusion_plugin" / "core"
MAX_LINES = 450
LAYERS = {"raster", "sensor", "engine", "methods", "pipeline", "report", "install"}


def test_core_is_layers_only() -> None:
    modules = {p.name for p in CORE.glob("*.py")}
    packages = {p.name for p in CORE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert modules == {"__init__.py", "errors.py"}
    assert packages == LAYERS
    for layer in LAYERS:  # each says its role
        assert len((CORE / layer / "__init__.py").read_text().strip().splitlines()) >= 3, layer


def test_no_module_is_over_the_line_limit() -> None:
    long = {
        str(path.relative_to(REPO)): n
        for root in (CORE, REPO / "training")
        for path in root.rglob("*.py")
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert not long, f"split these by concept (issue #22): {long}"
