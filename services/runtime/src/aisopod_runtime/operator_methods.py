"""The operator-facing methods of the runtime: config, cron, skills, status, logs, updates,
plugins, wizard.

`build_operator_methods(host)` builds their handlers, starts the cron scheduler and the
rollout resumer, and registers their stop hooks. The runtime's main.py merges its result
with `agent_methods`' handlers for `host.rpc.start`, which refuses to start unless together
they serve exactly the runtime's catalogue methods.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import Any

from aisopod.host import ServiceHost
from aisopod.rpc import Handler
from aisopod_runtime.config_methods import ConfigMethods
from aisopod_runtime.control_writes import WriteLimiter
from aisopod_runtime.cron.clock import Clock, SystemClock
from aisopod_runtime.cron.fire import PayloadRunner
from aisopod_runtime.cron.methods import CronMethods
from aisopod_runtime.cron.scheduler import Scheduler
from aisopod_runtime.cron.store import CronStore
from aisopod_runtime.logs_tail import LogsTail
from aisopod_runtime.plugins import plugins_list
from aisopod_runtime.providers import ProviderRegistry
from aisopod_runtime.skill_install import SkillInstaller, skill_install_handlers
from aisopod_runtime.skills import SkillsMethods, skills_dirs
from aisopod_runtime.status import StatusMethods
from aisopod_runtime.updates import Updates
from aisopod_runtime.wizard import WizardMethods

log = logging.getLogger("aisopod.runtime")


async def build_operator_methods(
    host: ServiceHost, *, clock: Clock | None = None, providers: ProviderRegistry | None = None
) -> dict[str, Handler]:
    limiter = WriteLimiter(host.bus)
    config = ConfigMethods(host, limiter)

    def cron_settings() -> Any:
        return host.config.current.cron

    async def emit_cron(payload: dict[str, object]) -> None:
        await host.bus.publish_event("cron.event", payload)

    cron_store = CronStore(await host.kv("cron"))
    scheduler = Scheduler(
        cron_store,
        instance=host.instance,
        clock=clock or SystemClock(),
        fire=PayloadRunner(host.bus, cron_settings),
        emit=emit_cron,
        settings=cron_settings,
    )
    cron = CronMethods(cron_store, scheduler, emit_cron)
    skills = SkillsMethods(skills_dirs(os.environ, host.settings.state_dir))
    installer = SkillInstaller(skills.dirs, lambda: host.config.current.skills)
    status = StatusMethods(host, providers)
    logs = LogsTail(host.bus)
    updates = Updates(host, await host.kv("updates"), limiter)
    wizard = WizardMethods(await host.kv("wizard"), config)

    scheduler.start()
    resumer = asyncio.create_task(updates.resume(), name="rollout-resume")

    async def stop() -> None:
        resumer.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await resumer
        await updates.stop()
        await scheduler.stop()

    host.on_stop(stop)
    handlers: dict[str, Handler] = {
        "config.get": config.get,
        "config.schema": config.schema,
        "config.set": config.set,
        "config.patch": config.patch,
        "config.apply": config.apply,
        "cron.status": cron.status,
        "cron.list": cron.list,
        "cron.add": cron.add,
        "cron.update": cron.update,
        "cron.run": cron.run,
        "cron.remove": cron.remove,
        "cron.runs": cron.runs,
        "skills.status": skills.status,
        "skills.bins": skills.bins,
        **skill_install_handlers(installer),
        "status": status.status,
        "logs.tail": logs.tail,
        "update.status": updates.status,
        "update.run": updates.run,
        "plugins.list": plugins_list,
        "wizard.start": wizard.start,
        "wizard.next": wizard.next,
        "wizard.cancel": wizard.cancel,
        "wizard.status": wizard.status,
    }
    return handlers
