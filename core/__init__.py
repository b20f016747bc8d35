"""transferlab.core: the engine. Pure Python + TensorFlow/Keras; never imports Qt (import-linter checks it).

Layers, each importing only from the ones below it (the contract in pyproject.toml):

    cli        the headless command line: parses arguments, calls the engine, prints
    deploy     using a stored run: predict on image files, export (.keras, SavedModel, TFLite)
    training   the one training call (loop), the job contract, the run kinds (registry), the MNIST and
               folder jobs, frozen vs fine-tuned comparison
    analysis   evaluation reports from predictions; cross-validation on cached features; the data doctor
               (suspect labels, near-duplicates, learning curve) and its embeddings cache
    runs       the run store on disk (one folder per run) and run lineage (reused splits and heads)
    models     MNIST models, EfficientNet-Lite0, the TF Hub layer, backbones, transfer-learning assembly,
               schedules, the restricted weights reader
    data       MNIST, class folders, image decoding, the user's own digits, safe fixes (move, exclude, undo)
    (base)     config, errors, events, stopping, atomic: plain Python shared by every layer
"""
