"""What the agent and the host both speak: message schema, topics, units and the reference-network catalog."""
