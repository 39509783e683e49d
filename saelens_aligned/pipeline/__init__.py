"""The LM pipeline: a source (model, hook, text), activation caches, training with
SAELens' runner and the one evaluation. Apps and benchmarks build on it."""
