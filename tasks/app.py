"""The Celery application the worker runs (`celery -A tasks worker`), configured from settings; `celery -A
tasks beat` (or `mcp-fc beat`) sends the periodic work of tasks/schedule.py with tasks/beat.py's scheduler."""

from deployer.queue import make_celery
from deployer.settings import get_settings
from tasks.schedule import beat_schedule

app = make_celery(main="mcpfc")
app.conf.include = ["tasks.deploy", "tasks.delete", "tasks.recovery", "tasks.verify", "tasks.health"]
app.conf.beat_schedule = beat_schedule(get_settings())
app.conf.beat_scheduler = "tasks.beat:LeaderScheduler"
