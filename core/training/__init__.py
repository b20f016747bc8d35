"""Training: the one call shared by the CLI and the GUI (loop.run_training), the contract between the loop and
a kind of run (jobs), the engine parts of each run kind (kinds; the light half is transferlab.core.kinds), the
MNIST and folder jobs, and frozen vs fine-tuned (compare)."""
