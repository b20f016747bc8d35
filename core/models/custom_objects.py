"""Custom Keras objects that stored models and optimizers may contain, registered for safe loading.

Importing this module registers them; `RunStore.load_model` imports it before loading.
"""

from __future__ import annotations

import transferlab.core.models.efficientnet_lite
import transferlab.core.models.hub_layer
import transferlab.core.models.losses
import transferlab.core.models.normalization
import transferlab.core.models.schedules  # noqa: F401
