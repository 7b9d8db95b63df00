"""Making models: settings, validation splits, training windows, the training loop and its
calibration, the convex solvers (logistic, LDA), the baseline, evaluation, retraining from feedback and the
promotion guard. Import from the submodules."""
