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


def test_a_fuse_run_only_calls_down_the_layers_but_for_its_callbacks(tmp_path) -> None:
    """Following a FuseRequest from fuse() to the written file: every call between layers goes down
    (pipeline -> methods -> engine -> sensor -> raster); the only calls back up are the callbacks the pipeline
    hands down (progress, cancel check, the writer it opens)."""
    import sys

    from nightlight_fusion_plugin.core.pipeline.fuse import FuseRequest, fuse

    order = ["pipeline", "methods", "engine", "sensor", "raster"]
    core = str(CORE) + "/"

    def layer(filename: str) -> str | None:
        rel = filename.split(core)[1] if core in filename else ""
        return rel.split("/")[0] if "/" in rel else None

    upward: set[tuple[str, str, str]] = set()
    downward: set[tuple[str, str]] = set()

    def watch(frame, event, arg):
        if event != "call" or (callee := layer(frame.f_code.co_filename)) not in order:
            return
        back = frame.f_back
        while back is not None and core not in back.f_code.co_filename:
            back = back.f_back  # through numpy/rasterio frames to the core caller
        caller = layer(back.f_code.co_filename) if back is not None else None
        if caller in order and caller != callee:
            if order.index(callee) < order.index(caller):
                upward.add((caller, callee, frame.f_code.co_name))
            else:
                downward.add((caller, callee))

    sample = REPO / "nightlight_fusion_plugin" / "sample_data"
    for model in ("reference-change", "baseline"):
        request = FuseRequest(
            dmsp=str(sample / "dmsp_F15_2005_sample.tif"),
            viirs=str(sample / "viirs_2015_reference_sample.tif"),
            model=model,
            output=str(tmp_path / f"{model}.tif"),
        )
        sys.setprofile(watch)
        try:
            fuse(request)
        finally:
            sys.setprofile(None)
    assert ("pipeline", "methods") in downward and ("methods", "raster") in downward
    assert {name for _, _, name in upward} <= {"check_cancel", "<lambda>", "writer", "report"}, upward


def test_no_import_circle_between_any_two_modules() -> None:
    """No module of the plugin or of training reaches itself through its imports (function-level imports
    included), finer than lint-imports' acyclic_siblings contract, which looks at siblings only."""
    import grimp

    graph = grimp.build_graph("nightlight_fusion_plugin", "training")
    circles = [
        (module, other)
        for module in graph.modules
        for other in graph.find_modules_directly_imported_by(module)
        if other != module and graph.chain_exists(importer=other, imported=module)
    ]
    assert not circles, f"import circles (issue #22): {sorted(circles)[:10]}"
