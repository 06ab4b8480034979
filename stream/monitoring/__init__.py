"""The monitoring core's parts that live outside :mod:`stream.monitor`."""
