"""A classifier with a real accuracy, for the tests and bench/accuracy.py (not a benchmark itself).

No network weights can be downloaded here, so one is trained: scikit-learn's bundled handwritten digits (8x8 grey
images, 1797 of them) written as PNG files in class folders (the accuracy set), a 1x1 convolution that averages the
three RGB channels (so the graph has a convolution to convert and quantize) and a small MLP trained by
scikit-learn on exactly what the pipeline makes of those PNGs (RGB, /255, mean 0, std 1).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def build(root: Path):
    """``.model`` (ONNX, input N x 3 x 8 x 8), ``.manifest`` (with its preprocessing), ``.test`` (labelled PNGs in
    class folders), ``.calibration`` (200 training PNGs), ``.own_top1`` (the trained model's accuracy on the test
    images, percent) and ``.n_test``, all under ``root``."""
    from types import SimpleNamespace

    from PIL import Image
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier


    data = load_digits()
    pixels = np.rint(data.images * (255 / 16)).astype(np.uint8)  # 0-16 grey levels as 8-bit PNG pixels
    x_train, x_test, y_train, y_test = train_test_split(pixels, data.target, test_size=0.3, random_state=0,
                                                        stratify=data.target)
    # Exactly what the pipeline makes of a PNG (RGB, /255, mean 0, std 1), averaged over its identical channels.
    classifier = MLPClassifier(hidden_layer_sizes=(32,), max_iter=600, random_state=0)
    classifier.fit(x_train.reshape(len(x_train), -1) / 255.0, y_train)
    own_top1 = classifier.score(x_test.reshape(len(x_test), -1) / 255.0, y_test) * 100

    test, calibration = root / "test", root / "calibration"
    for i, (image, label) in enumerate(zip(x_test, y_test)):
        folder = test / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image, mode="L").save(folder / f"{i:04d}.png")
    calibration.mkdir()
    for i, image in enumerate(x_train[:200]):
        Image.fromarray(image, mode="L").save(calibration / f"{i:04d}.png")

    w1, w2 = classifier.coefs_
    b1, b2 = classifier.intercepts_
    inits = [numpy_helper.from_array(np.full((1, 3, 1, 1), 1 / 3, np.float32), "mix"),
             numpy_helper.from_array(w1.astype(np.float32), "w1"), numpy_helper.from_array(b1.astype(np.float32), "b1"),
             numpy_helper.from_array(w2.astype(np.float32), "w2"), numpy_helper.from_array(b2.astype(np.float32), "b2")]
    nodes = [helper.make_node("Conv", ["image", "mix"], ["grey"]),
             helper.make_node("Flatten", ["grey"], ["flat"], axis=1),
             helper.make_node("Gemm", ["flat", "w1", "b1"], ["hidden"]),
             helper.make_node("Relu", ["hidden"], ["act"]),
             helper.make_node("Gemm", ["act", "w2", "b2"], ["logits"])]
    graph = helper.make_graph(nodes, "digits", [helper.make_tensor_value_info("image", TensorProto.FLOAT,
                                                                              ["N", 3, 8, 8])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
                              initializer=inits)
    model = root / "digits.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), str(model))
    manifest = root / "models.toml"
    manifest.write_text('[[model]]\npath = "digits.onnx"\n'
                        'preprocessing = { resize = 8, crop = 8, mean = [0, 0, 0], std = [1, 1, 1] }\n')
    return SimpleNamespace(model=model, manifest=manifest, test=test, calibration=calibration, own_top1=own_top1,
                           n_test=len(y_test))
