"""transferlab: train MNIST classifiers and transfer-learning image classifiers, offline, on a laptop CPU.

One import package, installed from the repository's folders (see pyproject.toml):

    transferlab.core   the engine: pure Python + TensorFlow/Keras, never imports Qt   (repository folder core/)
    transferlab.gui    the PySide6 desktop app: calls the engine, shows its events      (repository folder gui/)

`python -m transferlab` and the `transferlab` command open the app without arguments and run the headless CLI
(transferlab.core.cli) with them.
"""

__version__ = "0.2.0"
