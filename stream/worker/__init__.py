"""The worker's Kafka side: the batch consumer loop, checkpoints and rebalancing."""
