"""The TensorRT runner and its CUDA context on the fakes: prepared on one thread, run and closed on others, the
context stack balanced across many cycles, a closed runner refused."""

from __future__ import annotations

import threading

import pytest

from dnnprof.agent.backends.base import DeviceTimes

# -- the CUDA context across threads -----------------------------------------------------------------------------------


def test_the_fake_cuda_needs_a_current_context(install_fakes):
    _, cuda = install_fakes()
    cuda.init()
    with pytest.raises(cuda.LogicError, match="no currently active context"):
        cuda.Stream()
    with pytest.raises(cuda.LogicError, match="cuMemAlloc failed: invalid device context"):
        cuda.mem_alloc(16)
    with pytest.raises(cuda.LogicError, match="cannot pop non-current context"):
        cuda.Context.pop()


def test_infer_and_close_on_other_threads(install_fakes, make_backend, tiny, balanced):
    trt, cuda = install_fakes("10.3.0")
    runner = make_backend().prepare(tiny, 2, "fp32")  # prepared on this thread
    results, errors = [], []

    def work(action) -> None:
        try:
            results.append(action())
        except BaseException as exc:
            errors.append(exc)

    for action in (runner.infer, runner.infer, runner.close):  # each on its own new thread
        thread = threading.Thread(target=work, args=(action,))
        thread.start()
        thread.join()
    assert errors == []
    assert isinstance(results[0], DeviceTimes) and trt._fake.executions == 2
    threads = {thread for op, thread in cuda._fake.ops if op == "cuMemcpyDtoHAsync"}
    assert threads and threading.get_ident() not in threads  # (a finished thread's id may be reused)
    assert balanced(cuda) and cuda._fake.live_device_bytes == 0 and cuda._fake.warnings == []


def test_many_prepare_close_cycles_keep_the_stack_balanced(install_fakes, make_backend, tiny, balanced):
    _, cuda = install_fakes("8.6.2")
    backend = make_backend()
    for i in range(20):
        runner = backend.prepare(tiny, 1 + i % 3, "fp32")
        thread = threading.Thread(target=runner.infer)
        thread.start()
        thread.join()
        runner.close()
    assert balanced(cuda) and cuda._fake.pushes > 40
    assert cuda._fake.live_device_bytes == 0 and cuda._fake.host_allocations == 0
    assert cuda._fake.retains == 1 and cuda._fake.detaches == 0  # the primary context, retained once per process


def test_a_closed_runner_refuses_to_run(install_fakes, make_backend, tiny):
    install_fakes()
    runner = make_backend().prepare(tiny, 1, "fp32")
    runner.close()
    with pytest.raises(RuntimeError, match="closed"):
        runner.infer()




# -- out of device memory ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["8.6.1", "10.3.0"])
def test_out_of_memory_at_batch_64_fails_that_point_and_rules_out_larger_batches(install_fakes, make_backend, tiny,
                                                                                   list_sink, version, balanced):
    """TensorRT returns no execution context when the engine's device memory does not fit (it says why only in its
    log): batch 64 x 64 MiB is over the 3 GiB the fake GPU has; the sweep goes on."""
    from dnnprof.agent.measure import profiler
    from dnnprof.agent.measure.sweep import Sweep
    from dnnprof.shared import schema

    trt, cuda = install_fakes(version, device_memory_bytes_per_image=64 << 20, cuda={"total_memory": 3 << 30})
    quick = profiler.Settings(warmup_min_s=0.0, warmup_min_iterations=1, warmup_max_s=0.05, window_min_s=0.02,
                              window_max_s=0.05, min_iterations=2, idle_s=0, latency_ci=0.5)
    sweep = Sweep(board="orin-nano", run_id="r1", models=[tiny], batches=[1, 32, 64, 128], backend=make_backend(),
                  power=None, settings=quick)
    sink = list_sink()
    results = sweep.run(sink)
    assert [r.batch for r in results] == [1, 32]
    oom, ruled_out = [m for m in sink.messages if isinstance(m, schema.Failure)]
    assert (oom.batch, oom.error, oom.stage, oom.device, oom.backend) == (64, "out_of_memory", "prepare", "gpu",
                                                                           "tensorrt")
    assert oom.message == ("TensorRT could not create an execution context for tiny b64 fp32: 2: [executionContext.cpp"
                           "::nvinfer1::rt::ExecutionContext::ExecutionContext::470] Error Code 2: OutOfMemory (no "
                           "further information)")
    assert (ruled_out.batch, ruled_out.stage, ruled_out.cause) == (128, "not_run", "tiny b=64 fp32")
    assert trt._fake.builds == 3  # batch 128 was never built
    assert balanced(cuda)


def test_pycudas_out_of_memory_is_classed_by_its_own_name(install_fakes):
    """pycuda raises pycuda._driver.MemoryError (not the built-in) when a device allocation does not fit."""
    from dnnprof.agent.measure import failure

    _, cuda = install_fakes(cuda={"total_memory": 1 << 20})
    cuda.init()
    ctx = cuda.Device(0).retain_primary_context()
    ctx.push()
    try:
        with pytest.raises(cuda.MemoryError) as raised:
            cuda.mem_alloc(2 << 20)
    finally:
        cuda.Context.pop()
    assert type(raised.value).__name__ == "MemoryError" and not isinstance(raised.value, MemoryError)
    assert failure.classify(raised.value, "prepare") == ("out_of_memory", "cuMemAlloc failed: out of memory")


# -- memory, each part named -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["8.5.2", "8.6.2", "10.0.1", "10.1.0", "10.3.0", "10.13.3", "10.16.1", "11.0.0",
                                     "11.4.0"])
def test_memory_names_the_engine_the_activations_and_the_io_buffers(install_fakes, make_backend, tiny, tmp_path,
                                                                     version, balanced):
    """engine_bytes is the plan's size (the cache's sidecar says the same), activations_bytes the context's device
    memory (device_memory_size_v2 where it exists), io_bytes the runner's device buffers; on the fake GPU the three
    are exactly the device memory the point holds, and all of it comes back at close."""
    import json

    import msgspec

    from dnnprof.shared import schema

    trt, cuda = install_fakes(version)
    runner = make_backend().prepare(tiny, 2, "fp32")
    (sidecar,) = (tmp_path / "engines").glob("*.json")
    assert runner.engine_bytes == json.loads(sidecar.read_text())["plan_bytes"]
    assert runner.engine_bytes > trt._fake.last_build["weights_bytes"] == 4 * 3 * 3 * 3 * 4  # the Conv's fp32 weights
    assert runner.activations_bytes == runner.memory_bytes == 2 * trt._fake.device_memory_bytes_per_image
    assert runner.io_bytes == (2 * 3 * 8 * 8 + 2 * 4 * 8 * 8) * 4  # input and output, float32, batch 2
    assert cuda._fake.live_device_bytes == runner.io_bytes  # pycuda's: the I/O buffers
    assert cuda._fake.reserved_bytes == runner.engine_bytes + runner.activations_bytes  # TensorRT's own
    memory = schema.Memory(backend_bytes=runner.memory_bytes, engine_bytes=runner.engine_bytes,
                           activations_bytes=runner.activations_bytes, io_bytes=runner.io_bytes)
    assert msgspec.json.decode(msgspec.json.encode(memory), type=schema.Memory) == memory
    runner.close()
    assert cuda._fake.live_device_bytes == 0 and cuda._fake.reserved_bytes == 0 and balanced(cuda)
    again = make_backend().prepare(tiny, 2, "fp32")  # from the engine cache: the same plan, the same figures
    assert trt._fake.builds == 1
    assert (again.engine_bytes, again.activations_bytes, again.io_bytes) == (memory.engine_bytes,
                                                                             memory.activations_bytes, memory.io_bytes)
    again.close()


def test_reduced_precision_shrinks_the_engine_s_weights(install_fakes, make_backend, tiny):
    trt, _ = install_fakes("10.3.0")
    sizes = {}
    for precision in ("fp32", "fp16", "int8"):
        runner = make_backend().prepare(tiny, 1, precision)
        sizes[precision] = (trt._fake.last_build["weights_bytes"], runner.engine_bytes)
        runner.close()
    assert [w for w, _ in sizes.values()] == [432, 216, 108]
    assert all(engine > weights for weights, engine in sizes.values())


def test_a_memory_record_without_the_parts_still_reads():
    """Results written before the parts were named decode with them unknown."""
    import msgspec

    from dnnprof.shared import schema

    old = msgspec.json.decode(b'{"backend_bytes": 1048576, "process_rss_delta_bytes": 5}', type=schema.Memory)
    assert (old.engine_bytes, old.activations_bytes, old.io_bytes) == (None, None, None)
    assert old.backend_bytes == 1 << 20
