"""Augmentation layers that stay fast on a GPU under every Keras backend.

Keras' ``RandomTranslation`` / ``RandomZoom`` / ``RandomRotation`` resample through a general
affine transform; on the lent H200 under JAX they cost 240-280 ms per 128-face step against
3 ms for the whole VGG step (``scripts/gpu_step_bench.py``, first GPU session). Zoom and shift
are separable, so here they are two small batched matrix products instead: a (48 x 48)
bilinear interpolation matrix per face and axis.
"""

from __future__ import annotations

import keras
from keras import ops


def _interpolation_matrices(size: int, scale, shift):
    """Bilinear resampling matrices (B, size_out, size_in) for a zoom and shift along one axis.

    Output pixel ``i`` samples the input at ``(i - c - shift) / scale + c`` (``c`` the centre),
    clamped to the border (edge pixels repeat rather than leaving black bars).
    """
    positions = ops.arange(size, dtype="float32")
    centre = (size - 1) / 2.0
    source = (positions[None, :] - centre - shift[:, None]) / scale[:, None] + centre
    source = ops.clip(source, 0.0, size - 1.0)
    # The triangle kernel max(0, 1 - |u - j|) is exactly bilinear interpolation weights.
    return ops.maximum(0.0, 1.0 - ops.abs(source[:, :, None] - positions[None, None, :]))


@keras.saving.register_keras_serializable(package="fer")
class RandomZoomShift(keras.layers.Layer):
    """Random isotropic zoom and translation of single-channel faces, identity at inference.

    Args:
        zoom: maximum relative zoom (0.15 draws scales in [0.85, 1.15]).
        shift: maximum translation as a fraction of the side (0.1 = up to 4.8 px at 48).
        seed: seed of the layer's random stream.
    """

    def __init__(self, zoom: float = 0.15, shift: float = 0.1, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.zoom = zoom
        self.shift = shift
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=False):
        if not training:
            return inputs
        batch = ops.shape(inputs)[0]
        height, width = inputs.shape[1], inputs.shape[2]
        scale = keras.random.uniform((batch,), 1.0 - self.zoom, 1.0 + self.zoom, seed=self.seed_generator)
        shift_x = keras.random.uniform((batch,), -self.shift, self.shift, seed=self.seed_generator) * width
        shift_y = keras.random.uniform((batch,), -self.shift, self.shift, seed=self.seed_generator) * height
        rows = _interpolation_matrices(height, scale, shift_y)
        cols = _interpolation_matrices(width, scale, shift_x)
        image = inputs[..., 0]
        image = ops.einsum("bij,bjk->bik", rows, image)
        image = ops.einsum("bik,blk->bil", image, cols)
        return image[..., None]

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "zoom": self.zoom, "shift": self.shift, "seed": self.seed}
