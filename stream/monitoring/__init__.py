"""Parts of the monitoring core kept out of :mod:`stream.monitor`: the categorical streams."""
