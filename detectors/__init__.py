"""driftwatch detectors: exact, streaming two-sample tests and river adapters.

Pure statistics (numpy, scipy, river); nothing here knows about Kafka or Prometheus.
"""

from detectors.base import DRIFT_RESOLVED, DRIFT_STARTED, DriftDetector, Transition
from detectors.ks import IncrementalKS
from detectors.kstest import KSResult, critical_gap, ks_pvalue
from detectors.river_adapters import ADWINDetector, KSWINDetector, PageHinkleyDetector
from detectors.windowed import WindowedKS

__all__ = [
    "DRIFT_RESOLVED",
    "DRIFT_STARTED",
    "ADWINDetector",
    "DriftDetector",
    "IncrementalKS",
    "KSResult",
    "KSWINDetector",
    "PageHinkleyDetector",
    "Transition",
    "WindowedKS",
    "critical_gap",
    "ks_pvalue",
]
