"""Counting an ONNX classifier's parameters, MACs and activation memory without loading its weights."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from dnnprof.shared import opcount as inspection
from dnnprof.agent.models import zoo

# MACs per image: the torchvision conv + linear count (fvcore / thop), which torchvision's docs publish rounded
# to 2 decimals as "GFLOPS": resnet18 1.81, mobilenet_v2 0.30, squeezenet1_1 0.35, shufflenet_v2_x0_5 0.04.
REFERENCE_MACS = {
    "resnet18": 1.814e9,
    "mobilenet_v2": 0.3008e9,  # 300.77 M; the MobileNetV2 paper says 300 M
    "squeezenet1_1": 0.3495e9,
    # torchvision publishes 0.04; the ShuffleNetV2 paper's "41 M" is rounded up (its x1.0 "146 M" is 0.145 G
    # in torchvision's count too), so only the 2-decimal figure is checked
    "shufflenet_v2_x0_5": None,
}
PUBLISHED_GMACS = {"resnet18": 1.81, "mobilenet_v2": 0.30, "squeezenet1_1": 0.35, "shufflenet_v2_x0_5": 0.04,
                   "resnet50": 4.09, "alexnet": 0.71}


@pytest.fixture(scope="module")
def zoo_files(tmp_path_factory):
    out = tmp_path_factory.mktemp("zoo")
    paths = zoo.generate(list(REFERENCE_MACS), out)
    return dict(zip(REFERENCE_MACS, paths, strict=True))


@pytest.mark.parametrize("name", list(REFERENCE_MACS))
def test_zoo_networks_match_torchvision(zoo_files, name):
    path = zoo_files[name]
    result = inspection.inspect(path)
    assert round(result.macs / 1e9, 2) == PUBLISHED_GMACS[name]
    if REFERENCE_MACS[name] is not None:
        assert result.macs == pytest.approx(REFERENCE_MACS[name], rel=0.01)
    assert result.flops == 2 * result.macs
    assert result.params == zoo.count_params(onnx.load(str(path)))  # BN folded: conv + gemm weights and biases
    assert result.input_name == "input" and result.input_shape == (3, 224, 224)
    assert result.unsupported == []
    assert sum(kind["macs"] for kind in result.by_kind.values()) == result.macs
    assert sum(kind["params"] for kind in result.by_kind.values()) == result.params
    assert result.by_kind["other"]["macs"] == 0
    assert result.activation_bytes > result.peak_activation_bytes > 0


def test_zoo_layer_counts(zoo_files):
    by_kind = inspection.inspect(zoo_files["resnet18"]).by_kind
    assert by_kind["convolution"]["layers"] == 20 and by_kind["fully_connected"]["layers"] == 1
    assert by_kind["fully_connected"] == {"macs": 512 * 1000, "params": 512 * 1000 + 1000, "layers": 1}
    assert inspection.inspect(zoo_files["squeezenet1_1"]).by_kind["fully_connected"]["layers"] == 0


def test_big_zoo_networks_match_torchvision(tmp_path):
    """resnet50 and alexnet (whose 61 M parameters are skipped, not read) also give torchvision's figures."""
    for path in zoo.generate(["resnet50", "alexnet"], tmp_path):
        result = inspection.inspect(path)
        assert round(result.macs / 1e9, 2) == PUBLISHED_GMACS[path.stem], path.stem
    assert result.params == 61_100_840  # torchvision's alexnet: no BN, nothing folded


# -- hand-made graphs with known answers -------------------------------------------------------------


def _weight(name, shape):
    return numpy_helper.from_array(np.ones(shape, dtype=np.float32), name)


def _save(path, nodes, initializers=(), shape=(3, 8, 8), batch="N", output_shape=None, opset=13, extra_inputs=()):
    graph = helper.make_graph(
        nodes, "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, *shape]), *extra_inputs],
        [helper.make_tensor_value_info(nodes[-1].output[0], TensorProto.FLOAT, output_shape)],
        initializer=list(initializers),
    )
    domains = {node.domain for node in nodes if node.domain}
    opsets = [helper.make_opsetid("", opset)] + [helper.make_opsetid(d, 1) for d in sorted(domains)]
    onnx.save(helper.make_model(graph, opset_imports=opsets, ir_version=7), str(path))
    return path


def _conv(path, batch="N"):
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["y"], pads=[1, 1, 1, 1], name="conv")]
    return _save(path, nodes, [_weight("w", (4, 3, 3, 3)), _weight("b", (4,))], batch=batch)


def test_single_conv(tmp_path):
    result = inspection.inspect(_conv(tmp_path / "conv.onnx"))
    assert result.macs == 4 * 8 * 8 * 3 * 3 * 3  # output elements x in-channels x kernel
    assert result.flops == 2 * result.macs
    assert result.params == 4 * 3 * 3 * 3 + 4
    assert result.by_kind["convolution"] == {"macs": 6912, "params": 112, "layers": 1}
    assert result.by_kind["fully_connected"] == {"macs": 0, "params": 0, "layers": 0}
    assert result.activation_bytes == result.peak_activation_bytes == 4 * 8 * 8 * 4
    assert result.input_shape == (3, 8, 8) and result.unsupported == []


@pytest.mark.parametrize("batch", [1, 4, "batch_size"])
def test_batch_fixed_or_symbolic_gives_per_image_counts(tmp_path, batch):
    result = inspection.inspect(_conv(tmp_path / "conv.onnx", batch=batch))
    assert (result.macs, result.params, result.activation_bytes) == (6912, 112, 1024)


def test_grouped_and_depthwise_conv(tmp_path):
    nodes = [
        helper.make_node("Conv", ["x", "wd"], ["d"], pads=[1, 1, 1, 1], group=8),  # depthwise 8 -> 8
        helper.make_node("Conv", ["d", "wg"], ["y"], pads=[1, 1, 1, 1], group=2),  # 8 -> 4 in 2 groups
    ]
    result = inspection.inspect(_save(tmp_path / "grouped.onnx", nodes,
                                      [_weight("wd", (8, 1, 3, 3)), _weight("wg", (4, 4, 3, 3))], shape=(8, 8, 8)))
    assert result.macs == 8 * 64 * 9 + 4 * 64 * 4 * 9
    assert result.params == 72 + 144
    assert result.by_kind["convolution"]["layers"] == 2


def test_conv_transpose(tmp_path):
    nodes = [helper.make_node("ConvTranspose", ["x", "w"], ["y"], strides=[2, 2])]
    result = inspection.inspect(_save(tmp_path / "deconv.onnx", nodes, [_weight("w", (4, 2, 2, 2))], shape=(4, 4, 4)))
    assert result.macs == 2 * 8 * 8 * 4  # each output sums one kernel tap per input channel
    assert result.params == 32


def test_gemm(tmp_path):
    nodes = [helper.make_node("Flatten", ["x"], ["f"]),
             helper.make_node("Gemm", ["f", "w", "b"], ["y"], transB=1)]
    result = inspection.inspect(_save(tmp_path / "gemm.onnx", nodes, [_weight("w", (10, 48)), _weight("b", (10,))],
                                      shape=(3, 4, 4)))
    assert result.macs == 48 * 10
    assert result.by_kind["fully_connected"] == {"macs": 480, "params": 490, "layers": 1}
    assert result.by_kind["other"] == {"macs": 0, "params": 0, "layers": 1}  # the Flatten
    assert result.params == 490


def test_matmul_with_initializer_weight_and_bias_add(tmp_path):
    nodes = [helper.make_node("Reshape", ["x", "shape"], ["r"]),  # (N, 3, 16): 3 rows per image
             helper.make_node("MatMul", ["r", "w"], ["m"]),
             helper.make_node("Add", ["m", "b"], ["y"])]
    shape = numpy_helper.from_array(np.array([0, 3, 16], dtype=np.int64), "shape")
    result = inspection.inspect(_save(tmp_path / "matmul.onnx", nodes,
                                      [shape, _weight("w", (16, 10)), _weight("b", (10,))], shape=(3, 4, 4)))
    assert result.macs == 3 * 10 * 16
    assert result.by_kind["fully_connected"] == {"macs": 480, "params": 160, "layers": 1}
    assert result.by_kind["other"]["params"] == 10  # the bias, added by an Add
    assert result.params == 170  # the Reshape's shape is not a parameter


def test_matmul_of_two_activations_counts_under_other(tmp_path):
    nodes = [helper.make_node("Reshape", ["x", "shape"], ["r"]),
             helper.make_node("Transpose", ["r"], ["t"], perm=[0, 2, 1]),
             helper.make_node("MatMul", ["r", "t"], ["y"])]  # (N, 3, 16) @ (N, 16, 3)
    shape = numpy_helper.from_array(np.array([0, 3, 16], dtype=np.int64), "shape")
    result = inspection.inspect(_save(tmp_path / "attention.onnx", nodes, [shape], shape=(3, 4, 4)))
    assert result.by_kind["other"]["macs"] == result.macs == 3 * 3 * 16
    assert result.by_kind["fully_connected"]["layers"] == 0
    assert result.params == 0


def test_unfused_batchnorm_counts_scale_and_bias_not_running_stats(tmp_path):
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["c", "scale", "bias", "mean", "var"], ["n"]),
             helper.make_node("Clip", ["n", "lo", "hi"], ["y"])]  # relu6: its bounds are not parameters
    bounds = [numpy_helper.from_array(np.array(v, dtype=np.float32), n) for n, v in (("lo", 0.0), ("hi", 6.0))]
    stats = [_weight(name, (4,)) for name in ("scale", "bias", "mean", "var")]
    result = inspection.inspect(_save(tmp_path / "bn.onnx", nodes, [_weight("w", (4, 3, 3, 3)), *stats, *bounds]))
    assert result.params == 108 + 4 + 4
    assert result.by_kind["other"] == {"macs": 0, "params": 8, "layers": 2}  # BN and Clip cost no MACs
    assert result.macs == 6912


def test_weights_in_constant_nodes_and_behind_identity(tmp_path):
    nodes = [helper.make_node("Constant", [], ["w0"], value=_weight("w0", (4, 3, 3, 3))),
             helper.make_node("Identity", ["w0"], ["w"]),
             helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])]
    result = inspection.inspect(_save(tmp_path / "constant.onnx", nodes))
    assert (result.params, result.macs) == (108, 6912)
    assert result.by_kind["convolution"]["params"] == 108
    assert result.activation_bytes == 1024  # the weight passing the Identity is not an activation


def test_custom_op_is_listed_not_guessed(tmp_path):
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Mystery", ["c"], ["m"], domain="com.example"),
             helper.make_node("Relu", ["m"], ["y"])]
    result = inspection.inspect(_save(tmp_path / "custom.onnx", nodes, [_weight("w", (4, 3, 3, 3))]))
    assert result.unsupported == ["com.example::Mystery"]
    assert (result.macs, result.params) == (6912, 108)


def test_conv_after_custom_op_is_listed_when_its_shape_is_unknown(tmp_path):
    nodes = [helper.make_node("Mystery", ["x"], ["m"], domain="com.example"),
             helper.make_node("Conv", ["m", "w"], ["y"], pads=[1, 1, 1, 1])]
    result = inspection.inspect(_save(tmp_path / "custom.onnx", nodes, [_weight("w", (4, 3, 3, 3))]))
    assert result.unsupported == ["Conv (output shape unknown)", "com.example::Mystery"]
    assert (result.macs, result.params) == (0, 108)


def test_multiply_accumulating_op_without_a_count_is_listed(tmp_path):
    nodes = [helper.make_node("Einsum", ["x", "x"], ["y"], equation="nchw,nchw->nc")]
    assert inspection.inspect(_save(tmp_path / "einsum.onnx", nodes)).unsupported == ["Einsum"]


def test_initializers_listed_as_inputs_and_large_weights(tmp_path):
    """IR 3 style (initializers among the graph inputs) with weights over the 4 KiB kept in memory."""
    weight, bias = _weight("w", (64, 3, 3, 3)), _weight("b", (64,))
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["y"], pads=[1, 1, 1, 1])]
    extra = [helper.make_tensor_value_info("w", TensorProto.FLOAT, [64, 3, 3, 3]),
             helper.make_tensor_value_info("b", TensorProto.FLOAT, [64])]
    path = _save(tmp_path / "ir3.onnx", nodes, [weight, bias], extra_inputs=extra)
    result = inspection.inspect(path)
    assert (result.params, result.macs) == (64 * 27 + 64, 64 * 64 * 27)


def test_external_weights_are_never_opened(tmp_path):
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["y"], pads=[1, 1, 1, 1])]
    graph = helper.make_graph(nodes, "external",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              initializer=[_weight("w", (64, 3, 3, 3)), _weight("b", (64,))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=7)
    path = tmp_path / "external.onnx"
    onnx.save(model, str(path), save_as_external_data=True, location="external.data", size_threshold=0)
    (tmp_path / "external.data").unlink()  # only dims are needed
    result = inspection.inspect(path)
    assert (result.params, result.macs) == (64 * 27 + 64, 64 * 64 * 27)


def test_scalar_constants_are_not_parameters_but_learned_tensors_are(tmp_path):
    nodes = [helper.make_node("Mul", ["x", "half"], ["m"]),  # a scalar: not learned
             helper.make_node("Add", ["m", "position"], ["a"]),  # a position embedding: learned
             helper.make_node("Pow", ["a", "two"], ["y"])]
    consts = [numpy_helper.from_array(np.array(0.5, dtype=np.float32), "half"), _weight("position", (1, 3, 8, 8)),
              numpy_helper.from_array(np.array([2.0], dtype=np.float32), "two")]
    result = inspection.inspect(_save(tmp_path / "scalars.onnx", nodes, consts))
    assert result.params == 3 * 8 * 8 and result.macs == 0


def test_stale_shape_annotations_lose_to_inference(tmp_path):
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["y"])]
    path = _save(tmp_path / "stale.onnx", nodes, [_weight("w", (4, 3, 3, 3))], output_shape=["N", 5, 8, 8])
    model = onnx.load(str(path))
    model.graph.value_info.append(helper.make_tensor_value_info("c", TensorProto.FLOAT, ["N", 5, 8, 8]))
    onnx.save(model, str(path))
    result = inspection.inspect(path)
    assert (result.macs, result.activation_bytes) == (6912, 2 * 1024)


def test_annotations_of_custom_op_outputs_are_used(tmp_path):
    nodes = [helper.make_node("Mystery", ["x"], ["m"], domain="com.example"),
             helper.make_node("Conv", ["m", "w"], ["y"], pads=[1, 1, 1, 1])]
    path = _save(tmp_path / "custom.onnx", nodes, [_weight("w", (4, 3, 3, 3))])
    model = onnx.load(str(path))
    model.graph.value_info.append(helper.make_tensor_value_info("m", TensorProto.FLOAT, ["N", 3, 8, 8]))
    onnx.save(model, str(path))
    result = inspection.inspect(path)
    assert result.unsupported == ["com.example::Mystery"]
    assert result.macs == 6912


def test_to_dict_is_json_ready(tmp_path):
    data = inspection.to_dict(inspection.inspect(_conv(tmp_path / "conv.onnx")))
    assert json.loads(json.dumps(data)) == data
    assert {"params", "macs", "flops", "by_kind", "input_shape", "activation_bytes", "unsupported"} <= set(data)
    assert data["input_shape"] == [3, 8, 8]
    assert set(data["by_kind"]) == {"convolution", "fully_connected", "other"}


# -- errors ----------------------------------------------------------------------------------------------


@pytest.fixture
def error_of(one_line_error):
    """The one-line error ``inspection.inspect`` raises for a path."""
    return lambda path: one_line_error(inspection.inspect, path)


def test_missing_file(tmp_path, error_of):
    assert "does not exist" in error_of(tmp_path / "missing.onnx")


def test_directory(tmp_path, error_of):
    assert "is not a file" in error_of(tmp_path)


@pytest.mark.parametrize("content", [bytes(range(256)) * 8, b"", b"not an onnx model at all\n"])
def test_not_onnx(tmp_path, content, error_of):
    path = tmp_path / "garbage.onnx"
    path.write_bytes(content)
    message = error_of(path)
    assert "is not an ONNX model" in message


def test_two_inputs(tmp_path, make_onnx, error_of):
    assert "2 inputs" in error_of(make_onnx(tmp_path / "two.onnx", inputs=2))


def test_integer_input(tmp_path, make_onnx, error_of):
    assert "not float32" in error_of(make_onnx(tmp_path / "int.onnx", elem_type=TensorProto.INT64,
                                                      op="Identity"))


def test_not_nchw(tmp_path, make_onnx, error_of):
    assert "expected (batch, channels, height, width)" in error_of(
        make_onnx(tmp_path / "flat.onnx", shape=(3,), op="Relu"))


def test_shape_inference_failure_names_the_op(tmp_path, error_of):
    nodes = [helper.make_node("Reshape", ["x", "shape"], ["y"], name="bad_reshape")]
    shape = numpy_helper.from_array(np.array([1, 7, -1], dtype=np.int64), "shape")  # 192 is not a multiple of 7
    message = error_of(_save(tmp_path / "bad.onnx", nodes, [shape], batch=1))
    assert "shape inference failed at Reshape node 'bad_reshape'" in message


# -- a big model is inspected without reading its weights ------------------------------------------------

BIG_IN, BIG_OUT = 50_000, 1000  # a 50 M float32 weight: 200 MB


def _varint(value):  # protobuf's base-128 varint
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    return bytes(out + bytes([value]))


def _write_big_model(path):
    """A Flatten + Gemm classifier whose 200 MB weight is streamed to disk (never held in this process)."""
    weight = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[BIG_OUT, BIG_IN])  # data appended below
    weight_bytes = BIG_OUT * BIG_IN * 4
    nodes = [helper.make_node("Flatten", ["x"], ["f"]), helper.make_node("Gemm", ["f", "w", "b"], ["y"], transB=1)]
    graph = helper.make_graph(nodes, "big", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 100, 250])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", BIG_OUT])],
                              initializer=[_weight("b", (BIG_OUT,))])
    model = onnx.ModelProto(ir_version=7, opset_import=[helper.make_opsetid("", 13)])
    # protobuf concatenation merges: model fields + graph (7) holding graph fields + one more initializer (5)
    tensor_head = weight.SerializeToString() + _varint(9 << 3 | 2) + _varint(weight_bytes)
    tensor_len = len(tensor_head) + weight_bytes
    init_head = _varint(5 << 3 | 2) + _varint(tensor_len)
    graph_bytes = graph.SerializeToString()
    graph_len = len(graph_bytes) + len(init_head) + tensor_len
    with path.open("wb") as fh:
        fh.write(model.SerializeToString())
        fh.write(_varint(7 << 3 | 2) + _varint(graph_len) + graph_bytes + init_head + tensor_head)
        chunk = bytes(1 << 24)
        left = weight_bytes
        while left:
            fh.write(chunk[:min(left, len(chunk))])
            left -= min(left, len(chunk))
    return path


_MEASURE = textwrap.dedent("""
    import json, resource, sys, tracemalloc
    from dnnprof.shared import opcount as inspection

    def memory(key):  # VmRSS (resident now) or VmHWM (peak resident) in bytes; ru_maxrss would carry the
        try:          # forking parent's peak across exec
            with open("/proc/self/status") as fh:
                return next(int(line.split()[1]) * 1024 for line in fh if line.startswith(key + ":"))
        except (OSError, StopIteration):
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    inspection.inspect(sys.argv[2])  # warm up: imports and lazy module state are not the big model's cost
    before = memory("VmRSS")
    result = inspection.inspect(sys.argv[1])
    rss_growth = memory("VmHWM") - before
    tracemalloc.start()  # a second pass: tracemalloc's own bookkeeping would blur the RSS figure
    inspection.inspect(sys.argv[1])
    traced_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(json.dumps({"params": result.params, "macs": result.macs, "traced_peak": traced_peak,
                      "rss_growth": rss_growth, "unsupported": result.unsupported}))
""")


def test_big_model_weights_are_not_read(tmp_path):
    path = _write_big_model(tmp_path / "big.onnx")
    size = path.stat().st_size
    assert size > 200_000_000
    small = _conv(tmp_path / "small.onnx")
    out = subprocess.run([sys.executable, "-c", _MEASURE, str(path), str(small)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    measured = json.loads(out.stdout)
    print(f"file {size / 1e6:.0f} MB, tracemalloc peak {measured['traced_peak'] / 1e6:.2f} MB, "
          f"peak RSS growth {measured['rss_growth'] / 1e6:.2f} MB")
    assert measured["params"] == BIG_OUT * BIG_IN + BIG_OUT
    assert measured["macs"] == BIG_OUT * BIG_IN
    assert measured["unsupported"] == []
    # the weight's bytes are skipped: neither Python objects nor protobuf memory hold them
    assert measured["traced_peak"] < 0.05 * size
    assert measured["rss_growth"] < 0.1 * size
    onnx.checker.check_model(str(path))  # the streamed file is a valid ONNX model (checked in C++ memory)
