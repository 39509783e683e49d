"""What one run of a sweep trains on and is evaluated on: the backend contract
(`base`), LM activations through SAELens (`lm`), SAELens' synthetic ground-truth
model (`synthetic`), the validation split the learning-rate grid scores on, and
SAEBench's probing evals in a record (`probing_evals`)."""
