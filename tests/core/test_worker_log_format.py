"""Every line the worker writes names its deployment (deployer/logcontext.py, tasks/app.py): the worker's
Celery formats with the real Celery formatters and our filter, as `celery -A tasks worker` sets them up."""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Iterator

import pytest
from celery.app.log import TaskFormatter

from deployer import logcontext
from deployer.logcontext import deployment_logs
from tasks.app import app


@pytest.fixture
def worker_logger(request: pytest.FixtureRequest) -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger with the handler Celery's worker puts on the root logger (its format, its formatter),
    and the filter tasks/app.py installs after Celery set logging up."""
    factory = logging.getLogRecordFactory()
    stream = io.StringIO()
    logger = logging.getLogger(f"tests.worker_format.{request.node.name}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    app.log.setup_handlers(logger, stream, app.conf.worker_log_format, colorize=False)
    logcontext.install(logger)
    yield logger, stream
    logger.handlers.clear()
    logging.setLogRecordFactory(factory)


def test_the_worker_formats_are_ours() -> None:
    assert app.conf.worker_log_format == logcontext.WORKER_LOG_FORMAT
    assert app.conf.worker_task_log_format == logcontext.WORKER_TASK_LOG_FORMAT


def test_a_line_inside_a_run_names_its_deployment(worker_logger: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = worker_logger
    with deployment_logs("019a0b1c2d3e4f5a6b7c"):
        logging.getLogger(f"{logger.name}.tasks").info("deploy.progress")  # a module's own logger
    logger.info("beat.tick")
    logger.info("health.changed", extra={"deployment_id": "0190ffffffff00112233"})
    first, second, third = stream.getvalue().splitlines()
    assert first.endswith("] [deployment=019a0b1c2d3e4f5a6b7c] deploy.progress"), first
    assert second.endswith("] [deployment=-] beat.tick"), second
    assert third.endswith("] [deployment=0190ffffffff00112233] health.changed"), third


def test_a_thread_started_in_the_run_s_context_names_it_too(
    worker_logger: tuple[logging.Logger, io.StringIO],
) -> None:
    """As the deploy's probe thread does (tasks/deploy_run.py: contextvars.copy_context())."""
    import contextvars

    logger, stream = worker_logger
    with deployment_logs("019a0b1c2d3e4f5a6b7d"):
        context = contextvars.copy_context()
    thread = threading.Thread(target=context.run, args=(logger.info, "probe.request"))
    thread.start()
    thread.join()
    assert "[deployment=019a0b1c2d3e4f5a6b7d] probe.request" in stream.getvalue()


def test_the_task_format_names_it_beside_the_task() -> None:
    factory = logging.getLogRecordFactory()
    stream = io.StringIO()
    logger = logging.getLogger("tests.worker_format.task_logger")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    app.log.setup_handlers(
        logger, stream, app.conf.worker_task_log_format, colorize=False, formatter=TaskFormatter
    )
    logcontext.install(logger)
    try:
        with deployment_logs("019a0b1c2d3e4f5a6b7e"):
            logger.info("step done")
    finally:
        logger.handlers.clear()
        logging.setLogRecordFactory(factory)
    assert "] [deployment=019a0b1c2d3e4f5a6b7e] ???[???]: step done" in stream.getvalue()


def test_a_handler_without_the_filter_still_formats_the_line() -> None:
    """Celery's multiprocessing logger gets the worker format but not the filter: `-`, not a logging error."""
    factory = logging.getLogRecordFactory()
    stream = io.StringIO()
    logger = logging.getLogger("tests.worker_format.unfiltered")
    logger.propagate = False
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(logcontext.WORKER_LOG_FORMAT))
    logger.addHandler(handler)
    try:
        logcontext.install(logging.getLogger("tests.worker_format.elsewhere"))  # the factory, as tasks/app.py
        logger.warning("pool.error")
    finally:
        logger.handlers.clear()
        logging.setLogRecordFactory(factory)
    assert stream.getvalue().rstrip().endswith("] [deployment=-] pool.error")
