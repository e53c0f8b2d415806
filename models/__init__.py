"""The short-horizon ML signal: features, labels, training, the runtime with its fallback, the actor."""
