"""Telemetry and control input: decoding and validation of what is read from Kafka."""
