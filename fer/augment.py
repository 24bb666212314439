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


def _interpolation_matrices(size: int, scale, shift, bend=None):
    """Bilinear resampling matrices (B, size_out, size_in) for a zoom and shift along one axis.

    Output pixel ``i`` samples the input at ``u (1 + bend u / c) + c`` with
    ``u = (i - c - shift) / scale`` (``c`` the centre), clamped to the border (edge pixels repeat
    rather than leaving black bars). A positive ``bend`` squeezes the content of the far side
    and stretches the near one: a crude head turn.
    """
    positions = ops.arange(size, dtype="float32")
    centre = (size - 1) / 2.0
    source = (positions[None, :] - centre - shift[:, None]) / scale[:, None]
    if bend is not None:
        source = source * (1.0 + bend[:, None] * source / centre)
    source = ops.clip(source + centre, 0.0, size - 1.0)
    # The triangle kernel max(0, 1 - |u - j|) is exactly bilinear interpolation weights.
    return ops.maximum(0.0, 1.0 - ops.abs(source[:, :, None] - positions[None, None, :]))


@keras.saving.register_keras_serializable(package="fer")
class RandomZoomShift(keras.layers.Layer):
    """Random isotropic zoom and translation of single-channel faces, identity at inference.

    Args:
        zoom: maximum relative zoom (0.15 draws scales in [0.85, 1.15]).
        shift: maximum translation as a fraction of the side (0.1 = up to 4.8 px at 48).
        seed: seed of the layer's random stream.
        turn: maximum horizontal bend (see :func:`_interpolation_matrices`; at 48 px, 0.15
            moves the content a quarter of the width from the centre by up to ~0.9 px and at the
            edges by up to ~3.5 px, squeezing one side by up to ~23% at its edge and stretching
            the other by up to ~43%), a crude stand-in for head turns, which FER2013 has few of
            and which cost accuracy (``fer.pose``). 0 (the default) draws nothing, so the random
            streams of runs without it are unchanged.
    """

    def __init__(self, zoom: float = 0.15, shift: float = 0.1, seed: int | None = None, turn: float = 0.0,
                 **kwargs):
        super().__init__(**kwargs)
        self.zoom = zoom
        self.shift = shift
        self.turn = turn
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
        bend = None
        if self.turn:
            bend = keras.random.uniform((batch,), -self.turn, self.turn, seed=self.seed_generator)
        rows = _interpolation_matrices(height, scale, shift_y)
        cols = _interpolation_matrices(width, scale, shift_x, bend)
        image = inputs[..., 0]
        image = ops.einsum("bij,bjk->bik", rows, image)
        image = ops.einsum("bik,blk->bil", image, cols)
        return image[..., None]

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "zoom": self.zoom, "shift": self.shift, "seed": self.seed, "turn": self.turn}
