"""The benchmark pipeline: evaluation layers that read trained SAELens SAEs."""
