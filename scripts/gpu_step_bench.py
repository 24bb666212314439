"""Milliseconds per training step of each training ingredient, one at a time (GPU diagnosis).

Run on the lent GPU machine with KERAS_BACKEND=jax: ``python3 scripts/gpu_step_bench.py``.
The first full run showed augmentation and the SGD/cosine recipe at 0.2-2 s per step against
7 ms without them; this isolates which ingredient costs what.
"""

import sys
import time

import keras
import numpy as np

from fer.models import build_model
from fer.train import TrainConfig, build_augmenter, make_optimizer

budget = float(sys.argv[1]) if len(sys.argv) > 1 else 120.0
started = time.time()
rng = np.random.default_rng(0)
x = rng.uniform(0, 255, (128 * 24, 48, 48, 1)).astype("float32")
y = np.eye(7, dtype="float32")[rng.integers(0, 7, len(x))]
CASES = [
    ("paper_bn", (), "adam"), ("paper_bn", ("flip",), "adam"), ("paper_bn", ("shift",), "adam"),
    ("paper_bn", ("rotate",), "adam"), ("paper_bn", ("zoom",), "adam"), ("paper_bn", ("erase",), "adam"),
    ("paper_bn", (), "sgd_cosine"), ("vgg", (), "adam"), ("vgg", ("flip",), "sgd_cosine"),
]
for arch, augment, opt in CASES:
    if time.time() - started > budget:
        break
    core = build_model(arch)
    aug = build_augmenter(augment, 0)
    if aug is None:
        model = core
    else:
        face = keras.Input((48, 48, 1))
        model = keras.Model(face, core(aug(face)))
    if opt == "adam":
        optimizer = keras.optimizers.Adam(1e-3)
    else:
        optimizer = make_optimizer(TrainConfig(optimizer="sgd", lr=0.05, weight_decay=5e-4, schedule="cosine",
                                               warmup_epochs=2, epochs=30), 225)
    model.compile(optimizer=optimizer, loss=keras.losses.CategoricalCrossentropy(label_smoothing=0.1))
    t0 = time.time()
    model.fit(x[:256], y[:256], batch_size=128, epochs=1, verbose=0)
    compile_s = time.time() - t0
    t0 = time.time()
    model.fit(x, y, batch_size=128, epochs=1, verbose=0)
    print(f"{arch:9s} aug={','.join(augment) or '-':7s} opt={opt:10s} compile {compile_s:5.1f}s "
          f"step {(time.time() - t0) / 24 * 1000:7.1f} ms", flush=True)
