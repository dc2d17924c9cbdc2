"""heartbeat: agents that wake on a schedule, wake now, and system events (docs/runtime.md).

`policy` is pure (quiet hours, what an answer means); `inbox` keeps each session's queued
system events in KV `heartbeat` and hands them to the session's next turn; `jobs` turns the
config's heartbeats into job records that cron's `Scheduler` fires (exactly one replica per
slot, the same compare-and-set claim and lease as cron jobs); `beat` runs one heartbeat
turn; `methods` serves wake, system-event, last-heartbeat and set-heartbeats.
"""
