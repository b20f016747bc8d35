"""Training: the one call shared by the CLI and the GUI (loop.run_training), the contract between the loop and
a kind of run (jobs), the run kinds in one place (kinds), the MNIST and folder jobs, and frozen vs fine-tuned
(compare)."""
