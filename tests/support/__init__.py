"""What the tests and the benchmarks share: the local broker, the worker and service processes.

Importing this package imports nothing else; :mod:`tests.support.kafka_local` needs only the
standard library.
"""
