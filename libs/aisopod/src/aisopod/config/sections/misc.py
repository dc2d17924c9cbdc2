"""Small sections: cron, UI, logging."""

from pydantic import Field

from aisopod.config.sections.base import Section


class CronSection(Section):
    enabled: bool = True


class UiSection(Section):
    title: str = "aisopod"
    assistant_name: str = "aisopod"


class LoggingSection(Section):
    level: str = Field("INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")
