"""`nightlightfusion:series` as Processing's other front ends use it (#14): inside a graphical-modeler model
(built in code as the modeler saves it, run, written to .model3, read back and run again), in the Toolbox's
batch panel (the real BatchAlgorithmDialog, offscreen) and through qgis_process."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from qgis.core import (
    QgsApplication,
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingModelAlgorithm,
    QgsProcessingModelChildAlgorithm,
    QgsProcessingModelChildParameterSource,
    QgsProcessingModelOutput,
    QgsProcessingModelParameter,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterString,
)
from qgis_helpers import register_provider
from test_plugin_zip import _qgis_process, plugin_zip, qgis_profile  # noqa: F401 (fixtures reused)
from test_series import years  # noqa: F401 (fixture reused)

SERIES_OUT = "series:Series"  # a model's destination parameter for a child's output: "<child id>:<output name>"
COPY_OUT = "copy:Copy"


@pytest.fixture
def processing_module(qgis_processing):
    register_provider()
    import processing

    return processing


def _child(algorithm_id: str, child_id: str, sources: dict, outputs: dict[str, str]) -> QgsProcessingModelChildAlgorithm:
    """A child as the modeler's dialog makes it: a value source for every input parameter (the given ones, else
    the widget's default as a static value) and the outputs chosen as model outputs."""
    child = QgsProcessingModelChildAlgorithm(algorithm_id)
    child.setChildId(child_id)
    child.setDescription(child_id)
    for definition in child.algorithm().parameterDefinitions():
        if not definition.isDestination():
            default = QgsProcessingModelChildParameterSource.fromStaticValue(definition.defaultValue())
            child.addParameterSources(definition.name(), [sources.get(definition.name(), default)])
    model_outputs = {}
    for model_name, child_output in outputs.items():
        output = QgsProcessingModelOutput(model_name, model_name)
        output.setChildId(child_id)
        output.setChildOutputName(child_output)
        model_outputs[model_name] = output
    child.setModelOutputs(model_outputs)
    return child


def series_model(series_outputs: dict[str, str] | None = None) -> QgsProcessingModelAlgorithm:
    """Model inputs DMSP rasters, VIIRS references and the DMSP years -> series (baseline, an advanced option set)
    -> gdal:translate of the series (a second child consuming the series' raster output). `series_outputs`:
    which of the series' outputs are model outputs (default: its raster)."""
    model = QgsProcessingModelAlgorithm("series then copy", "tests")
    raster = QgsProcessing.TypeRaster
    for definition in (
        QgsProcessingParameterMultipleLayers("dmsp", "DMSP years", raster),
        QgsProcessingParameterMultipleLayers("viirs", "VIIRS references", raster),
        QgsProcessingParameterString("years", "DMSP years", optional=True),
    ):
        model.addModelParameter(definition, QgsProcessingModelParameter(definition.name()))
    source = QgsProcessingModelChildParameterSource
    param, static = source.fromModelParameter, source.fromStaticValue
    series = _child(
        "nightlightfusion:series",
        "series",
        {
            "DMSP": param("dmsp"),
            "VIIRS": param("viirs"),
            "YEARS": param("years"),
            "MODEL": static("baseline"),
            "SEED": static(2),
            "TEMPORAL_FIT": static("local-trend"),
            "EXTENT": static("0.1,0.9,0.1,0.9 [EPSG:4326]"),
        },
        {"Series": "OUTPUT"} if series_outputs is None else series_outputs,
    )
    model.addChildAlgorithm(series)
    copy = _child(
        "gdal:translate",
        "copy",
        {"INPUT": QgsProcessingModelChildParameterSource.fromChildOutput("series", "OUTPUT"), "DATA_TYPE": static(0)},
        {"Copy": "OUTPUT"},
    )
    model.addChildAlgorithm(copy)
    return model


def _descriptions(path) -> list[str]:
    with rasterio.open(path) as src:
        return list(src.descriptions)


def _run_model(processing, model, years, tmp_path: Path, tag: str) -> dict:  # noqa: F811
    feedback = QgsProcessingFeedback()
    result = processing.run(
        model,
        {
            "dmsp": [str(years["F14_2003"]), str(years["F15_2005"]), str(years["F16_2005"])],
            "viirs": [str(years["viirs"])],
            "years": "",
            SERIES_OUT: str(tmp_path / f"{tag}_series.tif"),
            COPY_OUT: str(tmp_path / f"{tag}_copy.tif"),
        },
        context=QgsProcessingContext(),
        feedback=feedback,
    )
    return result


def test_series_in_a_model_then_saved_as_model3_and_reloaded(processing_module, years, tmp_path):  # noqa: F811
    model = series_model()
    assert not model.validate()[1], model.validate()  # no child reports a problem (an unknown algorithm, a missing input)
    assert {p.name() for p in model.destinationParameterDefinitions()} == {SERIES_OUT, COPY_OUT}

    result = _run_model(processing_module, model, years, tmp_path, "first")
    assert result[SERIES_OUT] == str(tmp_path / "first_series.tif")
    assert _descriptions(result[SERIES_OUT]) == ["2003", "2005", "2015"]
    assert _descriptions(result[COPY_OUT]) == ["2003", "2005", "2015"]  # the chained child read the series' raster
    with rasterio.open(result[SERIES_OUT]) as src:
        assert src.bounds.left == pytest.approx(0.1, abs=0.01) and src.tags()["NLF_SEED"] == "2"
    report = json.loads((tmp_path / "first_series.json").read_text())
    assert report["temporal_fit"] == "local-trend"

    # the .model3 file holds every static value the child was given, and the reloaded model runs the same
    path = tmp_path / "series.model3"
    assert model.toFile(str(path))
    reloaded = QgsProcessingModelAlgorithm()
    assert reloaded.fromFile(str(path))
    child = reloaded.childAlgorithm("series")
    assert child.algorithm() is not None and child.algorithmId() == "nightlightfusion:series"
    assert _statics(child) == _statics(model.childAlgorithm("series"))
    assert _statics(child)["MODEL"] == "baseline" and _statics(child)["TEMPORAL_FIT"] == "local-trend"
    assert not reloaded.validate()[1]
    again = _run_model(processing_module, reloaded, years, tmp_path, "again")
    with rasterio.open(result[SERIES_OUT]) as a, rasterio.open(again[SERIES_OUT]) as b:
        assert list(b.descriptions) == ["2003", "2005", "2015"]
        assert np.array_equal(a.read(), b.read(), equal_nan=True)  # same inputs, seed and options: the same series


def test_series_as_an_intermediate_step_with_per_year_files_as_the_model_output(processing_module, years, tmp_path):  # noqa: F811
    """The series raster only feeds the next child (a temporary file the model makes up); the per-year folder is
    what the model gives back."""
    model = series_model({"Years": "PER_YEAR_DIR"})
    assert {p.name() for p in model.destinationParameterDefinitions()} == {"series:Years", COPY_OUT}
    result = processing_module.run(
        model,
        {"dmsp": [str(years["F14_2003"]), str(years["F15_2005"])], "viirs": [str(years["viirs"])],
         "years": "2003,2005", "series:Years": str(tmp_path / "years"), COPY_OUT: str(tmp_path / "copy.tif")},
        context=QgsProcessingContext(), feedback=QgsProcessingFeedback(),
    )  # fmt: skip
    assert result["series:Years"] == str(tmp_path / "years")
    assert sorted(p.name for p in (tmp_path / "years").iterdir()) == [f"nightlights_{y}.tif" for y in (2003, 2005, 2015)]
    assert _descriptions(result[COPY_OUT]) == ["2003", "2005", "2015"]
    # (the per-year folder holds no .aux.xml: the stretch read for styling leaves none. Next to the model's file
    # inputs QGIS's model runner itself leaves them: it opens its layer inputs before any child runs)


def _statics(child: QgsProcessingModelChildAlgorithm) -> dict:
    static = QgsProcessingModelChildParameterSource.StaticValue
    return {name: s[0].staticValue() for name, s in child.parameterSources().items() if s[0].source() == static}


@pytest.fixture
def batch_dialog(qgis_iface, processing_module):
    """The Toolbox's "Execute as Batch Process…" dialog for `series` (BatchAlgorithmDialog, offscreen)."""
    import gc

    from processing.gui.BatchAlgorithmDialog import BatchAlgorithmDialog
    from qgis_helpers import wait_until

    dialog = BatchAlgorithmDialog(QgsApplication.processingRegistry().createAlgorithmById("nightlightfusion:series"))
    yield dialog
    # the batch run's progress task ends when its QgsScopedProxyProgressTask is destroyed; the dialog's feedback,
    # still connected to it, outlives the run, so the task would stay "running" and QGIS's exit would wait for
    # it for ever at the end of the session: end it as closing the QGIS window would
    from qgis.core import QgsScopedProxyProgressTask
    from qgis.PyQt import sip

    dialog.close()
    for task in [o for o in gc.get_objects() if isinstance(o, QgsScopedProxyProgressTask)]:
        sip.delete(task)
    assert wait_until(lambda: QgsApplication.taskManager().countActiveTasks() == 0, timeout=30)


def _fill_row(panel, row: int, values: dict, outputs: dict) -> None:
    """What a user does in a batch row: values typed or picked into each cell's widget, output paths into the
    destination cells. A multiple-layers cell holds a list of files, as its "…" selection dialog gives it
    (3.22's C++ panel widget: a ';'-joined string is not read as several files)."""
    from processing.tools import dataobjects

    context = dataobjects.createContext()
    while panel.batchRowCount() <= row:
        panel.addRow()
    for name, value in values.items():
        panel.wrappers[row][panel.parameter_to_column[name]].setParameterValue(value, context)
    for name, path in outputs.items():
        panel.tblParameters.cellWidget(row + 1, panel.parameter_to_column[name]).setValue(path)  # row 0: "fill" row


def test_batch_dialog_runs_one_series_per_row_and_explains_a_bad_row(batch_dialog, qgis_new_project, years, tmp_path):  # noqa: F811
    """The real batch dialog (its panel's widgets filled per row, its own run loop: a fresh context per row,
    results loaded into the project): each row its own series; a bad row fails with its reason, writes nothing
    and the next row still runs."""
    from qgis.core import QgsProject, QgsRasterLayerTemporalProperties

    dialog = batch_dialog
    panel = dialog.mainWidget()
    dmsp = [str(years[k]) for k in ("F14_2003", "F15_2005", "F16_2005")]
    viirs = str(years["viirs"])
    out = {name: tmp_path / name / "series.tif" for name in ("all", "clip", "bad")}
    # row 1: three satellite-years, whole area, per-year files; row 2: a DMSP year before the DMSP archive;
    # row 3: two years on a smaller area, another seed
    _fill_row(panel, 0, {"DMSP": dmsp, "VIIRS": viirs, "MODEL": "baseline"},
              {"OUTPUT": str(out["all"]), "PER_YEAR_DIR": str(tmp_path / "all" / "years")})  # fmt: skip
    _fill_row(panel, 1, {"DMSP": dmsp[:2], "VIIRS": viirs, "MODEL": "baseline", "YEARS": "1990,2005"},
              {"OUTPUT": str(out["bad"])})  # fmt: skip
    _fill_row(panel, 2, {"DMSP": dmsp[:2], "VIIRS": viirs, "MODEL": "baseline", "SEED": 5,
                         "EXTENT": "0.2,0.6,0.2,0.6 [EPSG:4326]"}, {"OUTPUT": str(out["clip"])})  # fmt: skip
    assert panel.batchRowCount() == 3

    finished = {}
    dialog.finish = lambda results, errors: finished.update(results=results, errors=errors)  # the dialog's summary
    dialog.runAlgorithm()

    assert [r["parameters"]["OUTPUT"].sink.staticValue() for r in finished["results"]] == [str(out["all"]), str(out["clip"])]
    assert _descriptions(out["all"]) == ["2003", "2005", "2015"]
    assert len(list((tmp_path / "all" / "years").glob("*.tif"))) == 3
    with rasterio.open(out["clip"]) as src:
        assert list(src.descriptions) == ["2003", "2005", "2015"] and src.tags()["NLF_SEED"] == "5"
        assert src.bounds.left == pytest.approx(0.2, abs=0.01) and src.bounds.right == pytest.approx(0.6, abs=0.01)
    [bad] = finished["errors"]
    assert bad["parameters"]["YEARS"] == "1990,2005" and any("1992–2013" in e for e in bad["errors"])
    assert not out["bad"].exists() and not (tmp_path / "bad").exists()

    # the rows' results were loaded as the dialog loads them, each per-year layer with its year for the
    # Temporal Controller (the post-processors outlive the algorithm copy the batch loop deletes)
    layers = {layer.name(): layer for layer in QgsProject.instance().mapLayers().values()}
    assert {"Night lights 2003", "Night lights 2005", "Night lights 2015"} <= set(layers)
    props = layers["Night lights 2003"].temporalProperties()
    assert props.isActive() and props.mode() == QgsRasterLayerTemporalProperties.ModeFixedTemporalRange
    assert props.fixedTemporalRange().begin().date().year() == 2003
    assert all(layer.renderer().type() == "singlebandpseudocolor" for layer in layers.values())  # night-lights style


@pytest.mark.slow
def test_qgis_process_runs_series_with_repeated_layer_arguments(qgis_profile, years, tmp_path):  # noqa: F811
    """qgis_process (the installed zip, a throw-away profile): a multiple-layers parameter is given once per
    file (DMSP=a DMSP=b …); results as JSON; a bad year fails with the reason and writes nothing."""
    env, _ = qgis_profile
    dmsp = [f"DMSP={years[k]}" for k in ("F14_2003", "F15_2005", "F16_2005")]
    out = tmp_path / "out" / "series.tif"
    inputs = sorted(p.name for p in years["viirs"].parent.iterdir())
    done = _qgis_process(
        env, "run", "nightlightfusion:series", "--json", "--", *dmsp, f"VIIRS={years['viirs']}", "MODEL=baseline",
        f"OUTPUT={out}", f"PER_YEAR_DIR={tmp_path / 'out' / 'years'}",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    results = json.loads(done.stdout)["results"]
    assert results["OUTPUT"] == str(out) and results["LABELS"] == "2003,2005,2015"
    assert _descriptions(out) == ["2003", "2005", "2015"] and Path(results["REPORT"]).is_file()
    assert len(results["PER_YEAR_FILES"]) == 3 and all(Path(p).is_file() for p in results["PER_YEAR_FILES"])
    assert sorted(p.name for p in years["viirs"].parent.iterdir() if p.name != "out") == inputs  # no .aux.xml

    bad = tmp_path / "bad" / "series.tif"
    done = _qgis_process(
        env, "run", "nightlightfusion:series", "--", *dmsp[:2], f"VIIRS={years['viirs']}", "YEARS=1990,2005",
        "MODEL=baseline", f"OUTPUT={bad}",
    )  # fmt: skip
    assert done.returncode != 0 and "1992–2013" in done.stdout + done.stderr
    assert not bad.parent.exists() or not list(bad.parent.iterdir())


def test_results_loaded_after_the_algorithm_copy_is_gone_are_still_styled(processing_module, qgis_new_project, years, tmp_path):  # noqa: F811
    """runAndLoadResults (as the batch panel and a model's runner) loads the results after deleting the algorithm
    copy that ran: the night-lights style and the per-year time ranges must still be applied. The file inputs,
    opened as layers by Processing, get no .aux.xml."""
    from qgis.core import QgsProject

    processing_module.runAndLoadResults(
        "nightlightfusion:fuse",
        {"DMSP": str(years["F15_2005"]), "VIIRS": str(years["viirs"]), "MODEL": "baseline", "OUTPUT": str(tmp_path / "f.tif")},
    )
    processing_module.runAndLoadResults(
        "nightlightfusion:series",
        {"DMSP": [str(years["F14_2003"]), str(years["F15_2005"])], "VIIRS": [str(years["viirs"])], "MODEL": "baseline",
         "OUTPUT": str(tmp_path / "s.tif"), "PER_YEAR_DIR": str(tmp_path / "years")},
    )  # fmt: skip
    layers = list(QgsProject.instance().mapLayers().values())
    assert len(layers) == 5 and all(layer.renderer().type() == "singlebandpseudocolor" for layer in layers)
    years_loaded = sorted(layer.name() for layer in layers if layer.temporalProperties().isActive())
    assert years_loaded == ["Night lights 2003", "Night lights 2005", "Night lights 2015"]
    assert not [p.name for p in tmp_path.glob("*.aux.xml") if p.name.split(".")[0] in ("F14_2003", "F15_2005", "viirs_2015")]
