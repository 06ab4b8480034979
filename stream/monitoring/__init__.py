"""The monitoring core: :class:`~stream.monitoring.monitor.DriftMonitor` and its parts."""
