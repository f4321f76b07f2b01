"""Studies: arms × folds × label budgets × seeds over chains of stages, with a results table."""
