"""transferlab.core: the engine. Pure Python + TensorFlow/Keras; never imports Qt (import-linter checks it).

Layers, each importing only from the ones below it (the contract in pyproject.toml):

    cli        the headless command line: parses arguments, calls the engine, prints
    deploy     using a stored run: predict on image files (calibrated, with an unknown flag), explain
               (heatmaps), export (.keras, SavedModel, TFLite; with labels, temperature and thresholds),
               evaluate again
    training   the one training call (loop), the job contract, the run kinds' engine parts (kinds), the MNIST
               and folder jobs, frozen vs fine-tuned comparison
    analysis   evaluation reports from predictions, where a run's evaluation samples live; calibration, the
               unknown check, what a run stores for them
    runs       the run store on disk (one folder per run) and run lineage (reused splits and heads)
    models     MNIST models, EfficientNet-Lite0, the TF Hub layer, backbones, transfer-learning assembly,
               schedules, the restricted weights reader
    data       MNIST, class folders, image decoding, the user's own digits, feeding one image to a model
    (base)     plain Python shared by every layer, no TensorFlow: config, errors, events, stopping, atomic,
               catalog (the engine's fixed choices: MNIST models, backbones, export formats, image suffixes),
               kinds (the run kinds' light half: names, config types, titles, input shapes) and records (the
               typed records that cross modules and live in the store: ModelInfo, DataSummary,
               EvaluationReport, Comparison)

Per-kind knowledge lives in the run-kind registry only: transferlab.core.kinds (light) and
transferlab.core.training.kinds (the engine parts, importing TensorFlow only when used).
"""
