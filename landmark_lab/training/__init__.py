"""Training: the objects a config builds, the stages of a run, caches, callbacks, loggers, self-training, speed."""
