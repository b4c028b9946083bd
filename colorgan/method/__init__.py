"""The paper's method: its config, colour space, data, networks, loss terms, the training step."""
