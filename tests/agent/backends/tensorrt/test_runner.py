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


