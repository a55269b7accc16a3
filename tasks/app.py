"""The Celery application the worker runs (`celery -A tasks worker`), configured from settings."""

from deployer.queue import make_celery

app = make_celery(main="mcpfc")
app.conf.include = [
    "tasks.deploy",
    "tasks.delete",
    "tasks.recovery",
    "tasks.verify",
    "tasks.drift",
    "tasks.tokens",
]
