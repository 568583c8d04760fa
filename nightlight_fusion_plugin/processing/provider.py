from pathlib import Path

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .fuse_algorithm import FuseAlgorithm
from .intercalibrate_algorithm import IntercalibrateAlgorithm
from .series_algorithm import SeriesAlgorithm
from .simulate_dmsp_algorithm import SimulateDmspAlgorithm

ICON = Path(__file__).resolve().parent.parent / "icon.svg"


class NightlightFusionProvider(QgsProcessingProvider):
    def id(self) -> str:
        return "nightlightfusion"

    def name(self) -> str:
        return "Nightlight Fusion"

    def longName(self) -> str:  # noqa: N802
        return "Nightlight Fusion (DMSP-OLS / VIIRS DNB)"

    def icon(self) -> QIcon:
        return QIcon(str(ICON))

    def loadAlgorithms(self) -> None:  # noqa: N802
        self.addAlgorithm(FuseAlgorithm())
        self.addAlgorithm(IntercalibrateAlgorithm())
        self.addAlgorithm(SimulateDmspAlgorithm())
        self.addAlgorithm(SeriesAlgorithm())
