"""RabbitMQ for every daemon: connection policy, topology, confirmed publisher, consumer base."""
