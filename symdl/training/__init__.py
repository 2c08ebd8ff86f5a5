"""Training: the loop and its History, checkpoints, and the bundled data sets."""
