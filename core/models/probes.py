"""Looking inside a classifier: a twin model that returns (probabilities, embedding) in one forward pass.

The embedding is the input of the final Dense layer:
- transfer-learning models (an input, backbone parts, the nested "head"): the backbone's feature vector,
  i.e. the output of the parts before the head (the head's Dropout is the identity at inference);
- the head alone, or the fitted "top_and_head" of a cached fine-tuned run: the same, from cached inputs;
- any other functional model (MNIST): the input of its last Dense layer (the penultimate activations).
"""

from __future__ import annotations

import keras

from transferlab.core.errors import ModelError
from transferlab.core.models.transfer import HEAD_NAME


def head_and_parts(model: keras.Model) -> tuple[keras.Model | None, list[keras.layers.Layer]]:
    """(the nested head, the layers before it in call order), or (None, []) for a model without a head."""
    if model.name == HEAD_NAME:
        return model, []
    try:
        head = model.get_layer(HEAD_NAME)
    except ValueError:
        return None, []
    parts = [layer for layer in model.layers
             if layer is not head and not isinstance(layer, keras.layers.InputLayer)]
    return head, parts


def embedding_model(model: keras.Model) -> keras.Model:
    """A model sharing `model`'s layers with outputs [probabilities, embedding (flattened)]."""
    head, parts = head_and_parts(model)
    if head is not None:
        inputs = keras.Input(tuple(model.input_shape[1:]), name="probe_input")
        x = inputs
        for part in parts:
            x = part(x, training=False)
        probabilities = head(x, training=False)
        return keras.Model(inputs, [probabilities, keras.layers.Flatten(name="embedding")(x)], name="probe")
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    if not dense:
        raise ModelError(f"expected a classifier ending in a Dense layer, got layers "
                         f"{[layer.name for layer in model.layers][-5:]}")
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs  # a bare tensor in, as the model
    return keras.Model(inputs, [model.outputs[0], keras.layers.Flatten(name="embedding")(dense[-1].input)],
                       name="probe")
